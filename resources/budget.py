"""The stack's budget: a Cloud Billing budget on its project that alerts its notification channel.

The amount is the stack's `cost.budget.monthly_usd`, which `make plan` checks against the
estimate (a budget below the standing cost would alert every month: tooling/cost/). Alerts
fire on actual spend at each configured share of the budget and on the month's forecast
reaching all of it; they go to the stack's notification channel (resources/monitoring.py) as
well as to the billing account's administrators (Cloud Billing's default recipients).

A budget lives on the billing account, not in the project: whoever deploys needs
`roles/billing.costsManager` there. The CI deployer gets it beside the budget, below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import pulumi
import pulumi_gcp as gcp

from resources.access import Grantee, Members, Permission
from resources.base import PlatformComponent, binder
from stacks.config import BudgetConfig


@dataclass(frozen=True)
class BudgetArgs:
    project: str
    settings: BudgetConfig
    """The billing account the project bills to, the amount and the shares of it (of actual
    spend) that alert: the stack's `cost.budget:` section as validated (it names an account and
    an amount, or the stack has no budget)."""
    display_name: str
    notification_channel: pulumi.Input[str] | None
    """The stack's channel (`projects/…/notificationChannels/…`); None: billing admins only."""
    members: Members = dataclasses.field(default_factory=dict)


class Budget(PlatformComponent):
    """A monthly Cloud Billing budget filtered to the stack's project."""

    TYPE = "tabular-mlops:billing:Budget"
    # Both are called with the project as quota project: budgets, and the billing account's IAM.
    APIS = ("billingbudgets.googleapis.com", "cloudbilling.googleapis.com")
    TARGETS: ClassVar[Mapping[str, str]] = {
        "billing_account": "the billing account (`cost.budget.billing_account`)",
    }
    PERMISSIONS = (
        Permission(
            Grantee.CI_DEPLOYER,
            "roles/billing.costsManager",
            "billing_account",
            "create and update the stack's budget (budgets live on the billing account)",
        ),
    )

    budget: gcp.billing.Budget

    def __init__(self, name: str, args: BudgetArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        number = gcp.organizations.get_project_output(project_id=args.project).number
        settings = args.settings
        billing_account = str(settings.billing_account)
        units, cents = divmod(round(float(settings.monthly_usd or 0) * 100), 100)
        rules = [
            {"threshold_percent": share, "spend_basis": "CURRENT_SPEND"}
            for share in sorted(set(settings.alert_thresholds))
        ]
        # Granted first: whoever deploys next (CI) creates and updates the budget with it.
        self.bindings = self.grant(
            args.project,
            args.members,
            {
                "billing_account": binder(
                    self, gcp.billing.AccountIamMember, billing_account_id=billing_account
                )
            },
            only=("billing_account",),
        )
        self.budget = gcp.billing.Budget(
            f"{name}-monthly",
            billing_account=billing_account,
            display_name=args.display_name,
            budget_filter={
                "projects": [number.apply(lambda n: f"projects/{n}")],
                "calendar_period": "MONTH",
                "credit_types_treatment": "INCLUDE_ALL_CREDITS",
            },
            amount={
                "specified_amount": {
                    "currency_code": "USD",
                    "units": str(units),
                    "nanos": cents * 10_000_000,
                }
            },
            # Actual spend at each share, and a forecast that the month will exceed the budget.
            threshold_rules=[*rules, {"threshold_percent": 1.0, "spend_basis": "FORECASTED_SPEND"}],
            all_updates_rule={
                "monitoring_notification_channels": (
                    [args.notification_channel] if args.notification_channel else []
                ),
            },
            # The deployer's right on the billing account comes first.
            opts=self.child(depends_on=self.bindings),
        )
        self.register_outputs({"budget": self.budget.name})
