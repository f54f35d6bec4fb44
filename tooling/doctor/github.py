"""The GitHub repository against the environments the bootstrap creates for this stack.

GitHub's rule (docs "Deployments and environments"): environments and deployment-branch limits
exist in public repositories on every plan, in private or internal ones from GitHub Pro/Team up;
required reviewers in private or internal repositories need GitHub Enterprise.
"""

from __future__ import annotations

from tooling.doctor.api import GITHUB, ApiError
from tooling.doctor.core import FAIL, OK, WARN, Context, Finding, unreadable

ENVIRONMENT_PLANS = {"pro", "team", "business", "enterprise"}
REVIEWER_PLANS = {"enterprise", "business"}  # "business": GitHub Enterprise Cloud's older name


def _plan(ctx: Context, owner: dict) -> str | None:
    """The owner's GitHub plan, when the token may see it (organisation members, the user)."""
    url = (
        f"{GITHUB}/orgs/{owner['login']}"
        if owner.get("type") == "Organization"
        else (f"{GITHUB}/user")
    )
    try:
        answer = ctx.get(url)
    except ApiError:
        return None
    if answer.get("login", owner["login"]).lower() != owner["login"].lower():
        return None  # /user is the caller, not the repository's owner
    return (answer.get("plan") or {}).get("name")


def repository(ctx: Context) -> list[Finding]:
    """GitHub repos.get, orgs.get (or users.getAuthenticated), users.get / teams.getByName:
    visibility, owner, plan, and the reviewers the bootstrap will set."""
    ci = ctx.config.platform.ci
    if not ci.github_repository:
        return [Finding("github", OK, "no ci.github_repository: no CI for this stack")]
    try:
        repo = ctx.get(f"{GITHUB}/repos/{ci.github_repository}")
    except ApiError as error:
        fix = "check ci.github_repository; for a private repository export GITHUB_TOKEN"
        return [unreadable("github", f"repository {ci.github_repository}", error, fix)]
    owner = repo.get("owner") or {}
    findings = []
    if ci.github_repository_owner_id and str(owner.get("id")) != ci.github_repository_owner_id:
        findings.append(
            Finding(
                "github",
                FAIL,
                f"{ci.github_repository}'s owner id is {owner.get('id')}, the stack trusts "
                f"{ci.github_repository_owner_id}: CI tokens would be refused",
                f"set ci.github_repository_owner_id: '{owner.get('id')}' in {ctx.stack_file}",
            )
        )
    findings += _reviewers(ctx, owner.get("login", ""))
    visibility = repo.get("visibility") or ("private" if repo.get("private") else "public")
    if visibility == "public":
        return [*findings, Finding("github", OK, f"{ci.github_repository} is public: "
                                   "environments and required reviewers available")]  # fmt: skip
    return findings + _private(ctx, visibility, _plan(ctx, owner))


def _reviewers(ctx: Context, owner: str) -> list[Finding]:
    """GitHub users.get / teams.getByName: each reviewer exists (the bootstrap looks them up);
    a team must belong to the repository's organisation to review its deployments."""
    findings = []
    for reviewer in ctx.config.platform.ci.reviewers:
        org, _, slug = reviewer.rpartition("/")
        if org and org.lower() != owner.lower():
            findings.append(
                Finding(
                    "github",
                    FAIL,
                    f"reviewer team {reviewer} is not of {owner}",
                    f"name a team of {owner} in ci.reviewers ({ctx.stack_file})",
                )
            )
            continue
        url = f"{GITHUB}/orgs/{org}/teams/{slug}" if org else f"{GITHUB}/users/{slug}"
        try:
            ctx.get(url)
        except ApiError as error:
            findings.append(
                unreadable(
                    "github",
                    f"reviewer {reviewer}",
                    error,
                    f"check ci.reviewers in {ctx.stack_file} (a login, or org/team)",
                )
            )
    return findings


def _private(ctx: Context, visibility: str, plan: str | None) -> list[Finding]:
    ci = ctx.config.platform.ci
    environment, reviewers = ci.deploy_environment, ci.reviewers
    if plan is None:
        return [
            Finding(
                "github",
                WARN,
                f"{ci.github_repository} is {visibility} and its owner's plan is not visible to "
                "you: environments need GitHub Pro/Team, required reviewers GitHub Enterprise",
                "check Settings > Billing and plans of the owner",
            )
        ]
    if plan not in ENVIRONMENT_PLANS:
        return [
            Finding(
                "github",
                FAIL,
                f"{ci.github_repository} is {visibility} on GitHub {plan}: no environments, so "
                f"no `{environment}` environment to limit deploys to main",
                "make the repository public, or move its owner to GitHub Team or Enterprise",
            )
        ]
    if reviewers and plan not in REVIEWER_PLANS:
        return [
            Finding(
                "github",
                FAIL,
                f"{ci.github_repository} is {visibility} on GitHub {plan}: the `{environment}` "
                f"environment cannot have required reviewers, so deploys would not wait for "
                f"{', '.join(reviewers)}",
                "use GitHub Enterprise Cloud, or a public repository; until then prod deploys "
                "are gated by branch protection only",
            )
        ]
    return [Finding("github", OK, f"{ci.github_repository} ({visibility}, GitHub {plan}): "
                    f"the `{environment}` environment can be protected as configured")]  # fmt: skip
