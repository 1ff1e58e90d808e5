"""The dashboard: server-rendered pages, admin only."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
