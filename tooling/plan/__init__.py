"""The offline plan: the real program run under recording mocks, no cloud involved.

    python -m tooling.plan …        the plan of one or more stacks, and their diff (cli.py)
    python -m tooling.plan.fresh    both stacks from nothing, in first-deploy order (fresh.py)

offline.py holds the mocks; provider_rules.py, provider_schema.py and iam_conditions.py make them
refuse what the provider would; deploy_checks.py checks a whole stack for what a first `pulumi up`
hits; cache.py keeps the plans of the stacks a plan deploys first.
"""
