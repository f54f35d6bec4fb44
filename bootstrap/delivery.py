"""The GitHub side of continuous delivery, as code: no gate depends on a manual click.

- one environment per stack, whose deploy jobs only `main` may run, and for prod QA must approve
  (required reviewers, no self-review, no administrator bypass);
- the Actions variables the workflows read (`.github/actionlint.yaml` lists them), from the
  stacks' outputs (tooling/github_variables.py decides names and scopes, as `make ci-variables`);
- branch protection on `main` requiring the pull-request checks and a review.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_github as github

from bootstrap.settings import DEPLOY_BRANCH, BootstrapSettings, Environment
from tooling.github_variables import Variable


@dataclass(frozen=True)
class DeliveryArgs:
    settings: BootstrapSettings
    """The repository, its owner, the stacks' environments and the checks main requires."""
    variables: tuple[Variable, ...] = ()
    """Empty until the stacks are deployed (their outputs are the values)."""


def _reviewers(reviewers: tuple[str, ...], opts: pulumi.InvokeOptions) -> list[dict] | None:
    """GitHub wants numeric ids: users by login, teams (org/slug) by slug in the owner org."""
    if not reviewers:
        return None
    users = [
        github.get_user_output(username=r, opts=opts).id.apply(int)
        for r in reviewers
        if "/" not in r
    ]
    teams = [
        github.get_team_output(slug=r.split("/", 1)[1], opts=opts).id.apply(int)
        for r in reviewers
        if "/" in r
    ]
    return [{"users": users, "teams": teams}]


class Delivery(pulumi.ComponentResource):
    """Environments with their protection, the Actions variables, and main's protection."""

    TYPE = "tabular-mlops-bootstrap:github:Delivery"

    environments: dict[str, github.RepositoryEnvironment]

    def __init__(self, name: str, args: DeliveryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, None, opts)
        # The token is the caller's (GITHUB_TOKEN, an administrator's, at bootstrap time only).
        provider = github.Provider(f"{name}-github", owner=args.settings.owner, opts=self._child())
        child = self._child(provider=provider)
        invoke = pulumi.InvokeOptions(provider=provider, parent=self)
        self.environments = {}
        for env in args.settings.environments:
            self.environments[env.name] = self._environment(name, args, env, child, invoke)
        for variable in args.variables:
            self._variable(name, args.settings.repository, variable, child)
        github.BranchProtection(
            f"{name}-protect-{DEPLOY_BRANCH}",
            repository_id=args.settings.repository,
            pattern=DEPLOY_BRANCH,
            enforce_admins=True,
            allows_deletions=False,
            allows_force_pushes=False,
            require_conversation_resolution=True,
            required_status_checks=[
                {"strict": True, "contexts": list(args.settings.required_checks)}
            ],
            required_pull_request_reviews=[
                {
                    "required_approving_review_count": 1,
                    "dismiss_stale_reviews": True,
                    "require_last_push_approval": True,
                }
            ],
            opts=child,
        )
        self.register_outputs({"environments": list(self.environments)})

    def _child(self, **options) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **options)

    def _environment(
        self,
        name: str,
        args: DeliveryArgs,
        env: Environment,
        child: pulumi.ResourceOptions,
        invoke: pulumi.InvokeOptions,
    ) -> github.RepositoryEnvironment:
        environment = github.RepositoryEnvironment(
            f"{name}-{env.name}",
            repository=args.settings.repository,
            environment=env.name,
            reviewers=_reviewers(env.reviewers, invoke),
            # Whoever triggered the deploy cannot approve it, administrators included.
            prevent_self_review=bool(env.reviewers),
            can_admins_bypass=False,
            deployment_branch_policy={"protected_branches": False, "custom_branch_policies": True},
            opts=child,
        )
        github.RepositoryEnvironmentDeploymentPolicy(
            f"{name}-{env.name}-{DEPLOY_BRANCH}",
            repository=args.settings.repository,
            environment=environment.environment,
            branch_pattern=DEPLOY_BRANCH,
            opts=child,
        )
        return environment

    def _variable(
        self, name: str, repository: str, variable: Variable, child: pulumi.ResourceOptions
    ) -> None:
        if variable.environment is None:
            github.ActionsVariable(
                f"{name}-{variable.name.lower()}",
                repository=repository,
                variable_name=variable.name,
                value=variable.value,
                opts=child,
            )
            return
        github.ActionsEnvironmentVariable(
            f"{name}-{variable.environment}-{variable.name.lower()}",
            repository=repository,
            # Through the environment resource: the variable waits for its environment.
            environment=self.environments[variable.environment].environment,
            variable_name=variable.name,
            value=variable.value,
            opts=child,
        )
