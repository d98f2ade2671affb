"""Placeholder candles extractor handler, replaced by issue 5 (the cloud end-to-end issue).

Exists only so that the CDK app (issue 4) can bundle and synthesize the Lambda asset.
"""

from typing import Any, Dict


def handler(event: Dict[str, Any], context: Any) -> Dict[str, Any]:
    raise NotImplementedError("candles handler not implemented yet (issue 5)")
