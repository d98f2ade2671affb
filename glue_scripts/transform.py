"""Placeholder Glue entry point (transform), replaced by issue 5 (the cloud end-to-end issue).

Exists only so that the CDK app (issue 4) can deploy the script asset.
"""

raise NotImplementedError("glue_scripts/transform.py not implemented yet (issue 5)")
