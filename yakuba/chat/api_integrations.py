"""(skeleton: routes added by their owner)"""

from __future__ import annotations

from ninja import Router

router = Router()
