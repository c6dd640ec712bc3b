"""The webstack policy pack: every rule in rules.py, mandatory (a violation stops preview and up)."""

from pulumi_policy import EnforcementLevel, PolicyPack

from rules import POLICIES

PolicyPack(name="webstack-hardening", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
