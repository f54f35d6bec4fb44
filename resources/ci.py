"""CI identity: GitHub Actions deploy and preview the stack through Workload Identity Federation.

No key exists anywhere. A GitHub Actions job asks GitHub for an OIDC token; the stack's
workload identity provider accepts tokens of this repository only (`attribute_condition`), and
Security Token Service exchanges one for a short-lived token of a service account the job's
identity may act as:

- the **deployer** (`deployer-<stack>`) runs `pulumi up`. Only jobs running in the stack's GitHub
  deploy environment act as it — the token's subject is `repo:OWNER/NAME:environment:ENV`, and
  the environment's own rules admit main only (and, for prod, QA's approval). It holds the
  administrative roles a `pulumi up` of this program needs, each below with its reason: no
  owner or editor, and `actAs` only on the workload accounts (given through `access.deployers`).
- the **previewer** (`previewer-<stack>`) runs `pulumi preview` on pull requests (subject
  `repo:OWNER/NAME:pull_request`; GitHub gives pull requests from forks no token). It reads the
  state and decrypts the stack's secrets; it can change nothing.

Both use the Pulumi state bucket and the secrets key named in the config, which live outside the
stacks they hold (they must exist before the first `pulumi up`): see docs/ci-cd.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pulumi
import pulumi_gcp as gcp

from resources.access import PROJECT, Binder, Condition, Grantee, Members, Permission
from resources.base import PlatformComponent, binder
from stacks.config import CiConfig

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"

# Targets of the deployer's grants that only some stacks have.
WORKBENCH_PROJECT = "project_with_workbench"
NETWORK_PROJECT = "project_with_network"
PRIVATE_SERVING_PROJECT = "project_with_private_serving"
CMEK_KEY = "cmek_key"
STATE_BUCKET = "state_bucket"
SECRETS_KEY = "secrets_key"


def _deploys(role: str, why: str, target: str = PROJECT) -> Permission:
    return Permission(Grantee.CI_DEPLOYER, role, target, why)


# What `pulumi up` of this program creates, role by role. Each is the narrowest predefined role
# that can create the resources named; docs/deploy.md ("Who runs the first `pulumi up`") lists
# the same.
DEPLOYER_PERMISSIONS = (
    _deploys("roles/serviceusage.serviceUsageAdmin", "enable the APIs the platform uses"),
    _deploys(
        "roles/iam.serviceAccountAdmin",
        "create the workload accounts and set who may act as them",
    ),
    _deploys("roles/iam.roleAdmin", "create the endpoint's predict-only custom role"),
    _deploys(
        "roles/iam.workloadIdentityPoolAdmin",
        "keep this CI identity's pool and provider up to date",
    ),
    Permission(
        Grantee.CI_DEPLOYER,
        "roles/resourcemanager.projectIamAdmin",
        PROJECT,
        "the few project-level grants (BigQuery jobs, Vertex AI, Eventarc receiver)",
        # Delegated role grants: the deployer may add or remove, at project level, only the
        # roles the platform's people and workloads hold there. Never owner or editor, never its
        # own or the previewer's roles: a change to those is applied by a project administrator.
        condition=Condition(
            title="only the platform's project roles",
            expression="api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', [])"
            ".hasOnly([{project_roles}])",
            description="grant or revoke only the project-level roles the program declares for "
            "people and workloads",
        ),
    ),
    _deploys("roles/storage.admin", "the data lake's buckets, the function's source, their IAM"),
    _deploys("roles/bigquery.admin", "the dataset, the tables and their IAM"),
    _deploys("roles/cloudfunctions.admin", "the ingestion function and its trigger"),
    _deploys("roles/run.admin", "the invoker grant on the function's Cloud Run service"),
    _deploys(
        "roles/artifactregistry.admin",
        "the function's and the pipeline's image repositories; publish the pipeline image",
    ),
    _deploys(
        "roles/aiplatform.admin",
        "the endpoint and its IAM, the training schedule; submit pipeline runs from CI",
    ),
    _deploys("roles/monitoring.admin", "alert policies, the notification channel, the dashboard"),
    _deploys("roles/logging.configWriter", "the log-based metrics the alerts read"),
    _deploys("roles/notebooks.admin", "the Workbench instance", WORKBENCH_PROJECT),
    _deploys(
        "roles/compute.networkAdmin",
        "the stack's networks (Workbench's, private serving's), NAT, the reserved services range",
        NETWORK_PROJECT,
    ),
    # The network admin role excludes firewall rules; the security admin role has them.
    _deploys("roles/compute.securityAdmin", "the networks' firewall rules", NETWORK_PROJECT),
    _deploys(
        "roles/servicenetworking.networksAdmin",
        "peer the private serving network with Google's services",
        PRIVATE_SERVING_PROJECT,
    ),
    _deploys("roles/cloudkms.admin", "the service agents' grants on the CMEK key", CMEK_KEY),
    _deploys(
        "roles/storage.objectUser",
        "read and write the stack's state and its lock (no IAM changes)",
        STATE_BUCKET,
    ),
    _deploys(
        "roles/cloudkms.cryptoKeyEncrypterDecrypter",
        "encrypt and decrypt the stack's secrets (the `gcpkms://` secrets provider)",
        SECRETS_KEY,
    ),
)
PREVIEWER_PERMISSIONS = (
    Permission(
        Grantee.CI_PREVIEWER,
        "roles/browser",
        PROJECT,
        "read the project, which the program's data sources look up during a preview",
    ),
    Permission(
        Grantee.CI_PREVIEWER,
        "roles/storage.objectViewer",
        STATE_BUCKET,
        "read the stack's state (a preview writes none)",
    ),
    Permission(
        Grantee.CI_PREVIEWER,
        "roles/cloudkms.cryptoKeyDecrypter",
        SECRETS_KEY,
        "decrypt the stack's secrets to preview with them",
    ),
)


@dataclass(frozen=True)
class CiIdentityArgs:
    project: str
    pool_id: str
    """Workload identity pool id (4-32 characters). A deleted pool's id stays taken for 30 days."""
    deployer_account_id: str
    previewer_account_id: str
    display_prefix: str
    settings: CiConfig
    """The repository (and owner id) whose tokens the provider accepts, the GitHub environment
    whose jobs may act as the deployer, the state bucket and the secrets key: the stack's `ci:`
    section as validated (it names a repository, or the stack has no CI identity)."""
    cmek_key: str | None = None
    """The platform's CMEK key, on which the deployer grants the service agents."""
    workbench: bool = False
    private_serving: bool = False
    project_roles: tuple[str, ...] = ()
    """The project-level roles the deployer may grant and revoke (everyone's but CI's own)."""


class CiIdentity(PlatformComponent):
    """The workload identity pool and GitHub provider, the deployer and the previewer."""

    TYPE = "tabular-mlops:iam:CiIdentity"
    APIS = (
        "iam.googleapis.com",
        "iamcredentials.googleapis.com",
        "sts.googleapis.com",
        "cloudresourcemanager.googleapis.com",
        "storage.googleapis.com",  # the grants on the state bucket
    )
    TARGETS: ClassVar[dict[str, str]] = {
        "deployer_account": "CI deployer service account",
        "previewer_account": "CI previewer service account",
        WORKBENCH_PROJECT: "the stack's project (stacks with Workbench)",
        NETWORK_PROJECT: "the stack's project (stacks with Workbench or private serving)",
        PRIVATE_SERVING_PROJECT: "the stack's project (stacks with `serving.private_network`)",
        CMEK_KEY: "the CMEK key (stacks with `kms_key`)",
        STATE_BUCKET: "Pulumi state bucket (`ci.state_bucket`)",
        SECRETS_KEY: "Pulumi secrets key (`ci.secrets_key`)",
    }
    PERMISSIONS = (
        Permission(
            Grantee.DEPLOY_JOBS,
            WORKLOAD_IDENTITY_USER,
            "deployer_account",
            "jobs in the stack's deploy environment (main only; QA approval for prod) act as "
            "the deployer, keyless",
        ),
        Permission(
            Grantee.PREVIEW_JOBS,
            WORKLOAD_IDENTITY_USER,
            "previewer_account",
            "pull-request jobs preview as the read-only previewer, keyless",
        ),
        *DEPLOYER_PERMISSIONS,
        *PREVIEWER_PERMISSIONS,
    )

    pool: gcp.iam.WorkloadIdentityPool
    provider: gcp.iam.WorkloadIdentityPoolProvider
    """Its `name` is the `workload_identity_provider` of google-github-actions/auth."""
    deployer: gcp.serviceaccount.Account
    previewer: gcp.serviceaccount.Account

    def __init__(self, name: str, args: CiIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        repository = args.settings.github_repository
        self.pool = gcp.iam.WorkloadIdentityPool(
            f"{name}-pool",
            project=args.project,
            workload_identity_pool_id=args.pool_id,
            display_name=f"{args.display_prefix} CI"[:32],
            description=f"GitHub Actions of {repository}",
            opts=self.child(),
        )
        self.provider = self._github_provider(name, args)
        self.deployer = gcp.serviceaccount.Account(
            f"{name}-deployer",
            project=args.project,
            account_id=args.deployer_account_id,
            display_name=f"{args.display_prefix}: CI deployer",
            description=f"`pulumi up` from {repository} "
            f"(GitHub environment {args.settings.deploy_environment})",
            opts=self.child(),
        )
        self.previewer = gcp.serviceaccount.Account(
            f"{name}-previewer",
            project=args.project,
            account_id=args.previewer_account_id,
            display_name=f"{args.display_prefix}: CI previewer",
            description=f"read-only `pulumi preview` on pull requests of {repository}",
            opts=self.child(),
        )
        members: Members = {
            Grantee.CI_DEPLOYER: [self.deployer.member],
            Grantee.CI_PREVIEWER: [self.previewer.member],
            Grantee.DEPLOY_JOBS: [subject(self.pool.name, deploy_subject(args))],
            Grantee.PREVIEW_JOBS: [subject(self.pool.name, preview_subject(args))],
        }
        binders = self._binders(args)
        self.bindings = self.grant(
            args.project,
            members,
            binders,
            only=(PROJECT, *binders),
            context={"project_roles": ", ".join(f"'{role}'" for role in args.project_roles)},
        )
        self.register_outputs(
            {
                "workload_identity_provider": self.provider.name,
                "deployer": self.deployer.email,
                "previewer": self.previewer.email,
            }
        )

    def _github_provider(
        self, name: str, args: CiIdentityArgs
    ) -> gcp.iam.WorkloadIdentityPoolProvider:
        return gcp.iam.WorkloadIdentityPoolProvider(
            f"{name}-github",
            project=args.project,
            workload_identity_pool_id=self.pool.workload_identity_pool_id,
            workload_identity_pool_provider_id="github",
            display_name="GitHub Actions",
            # GitHub signs every repository's tokens with the same issuer: without a condition,
            # any repository on GitHub could exchange its tokens here. Only the two subjects the
            # grants below name may exchange at all: a token of another workflow context (a
            # branch push, another environment) is refused before any grant is looked at.
            attribute_condition=attribute_condition(
                args.settings.github_repository,
                args.settings.github_repository_owner_id,
                subjects=(deploy_subject(args), preview_subject(args)),
            ),
            # The subject is what the grants below name; repository and ref are kept for the
            # audit logs (which branch an exchange came from).
            attribute_mapping={
                "google.subject": "assertion.sub",
                "attribute.repository": "assertion.repository",
                "attribute.ref": "assertion.ref",
            },
            oidc={"issuer_uri": GITHUB_ISSUER},
            opts=self.child(),
        )

    def _binders(self, args: CiIdentityArgs) -> dict[str, Binder]:
        """Where the deployer's and the previewer's grants go: their accounts, and the targets
        only some stacks have (Workbench, a network, private serving, CMEK, the state bucket
        and the secrets key)."""
        binders = {
            "deployer_account": binder(
                self, gcp.serviceaccount.IAMMember, service_account_id=self.deployer.name
            ),
            "previewer_account": binder(
                self, gcp.serviceaccount.IAMMember, service_account_id=self.previewer.name
            ),
        }
        if args.workbench:
            binders[WORKBENCH_PROJECT] = binder(self, gcp.projects.IAMMember, project=args.project)
        if args.workbench or args.private_serving:
            binders[NETWORK_PROJECT] = binder(self, gcp.projects.IAMMember, project=args.project)
        if args.private_serving:
            binders[PRIVATE_SERVING_PROJECT] = binder(
                self, gcp.projects.IAMMember, project=args.project
            )
        if args.cmek_key:
            binders[CMEK_KEY] = binder(
                self, gcp.kms.CryptoKeyIAMMember, crypto_key_id=args.cmek_key
            )
        if args.settings.state_bucket:
            binders[STATE_BUCKET] = binder(
                self, gcp.storage.BucketIAMMember, bucket=args.settings.state_bucket
            )
        if args.settings.secrets_key:
            binders[SECRETS_KEY] = binder(
                self, gcp.kms.CryptoKeyIAMMember, crypto_key_id=args.settings.secrets_key
            )
        return binders


def attribute_condition(
    repository: str, owner_id: str | None = None, subjects: tuple[str, ...] = ()
) -> str:
    """The CEL condition every token must meet: this repository (and owner id, when given), and
    one of `subjects` (GitHub's `sub` claim) when given."""
    condition = f"assertion.repository == '{repository}'"
    if owner_id:
        condition += f" && assertion.repository_owner_id == '{owner_id}'"
    if subjects:
        condition += " && (" + " || ".join(f"assertion.sub == '{s}'" for s in subjects) + ")"
    return condition


def deploy_subject(args: CiIdentityArgs) -> str:
    """GitHub's subject of jobs in the stack's deploy environment."""
    return f"repo:{args.settings.github_repository}:environment:{args.settings.deploy_environment}"


def preview_subject(args: CiIdentityArgs) -> str:
    """GitHub's subject of pull-request jobs."""
    return f"repo:{args.settings.github_repository}:pull_request"


def subject(pool_name: pulumi.Input[str], sub: str) -> pulumi.Output[str]:
    """The IAM principal of the tokens whose subject is `sub`, in the pool `pool_name`.

    One principal per subject rather than a `principalSet` over an attribute: GitHub's subject
    already names the repository and the environment (or the pull request), and no attribute
    mapping then has to cope with claims that only some tokens carry (`environment`).
    """
    return pulumi.Output.concat("principal://iam.googleapis.com/", pool_name, "/subject/", sub)


def deployer_member(account_id: str, project: str) -> str:
    """The deployer's IAM member, known before it exists (for `access.deployers` grants)."""
    return f"serviceAccount:{account_id}@{project}.iam.gserviceaccount.com"
