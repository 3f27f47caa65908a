"""Who may do what with customer-owned resources."""

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request


class CustomerAccess(permissions.BasePermission):
    """Anyone may sign up; listing everyone is staff-only; the rest needs a token."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if getattr(view, "action", None) == "create":
            return True
        if not (request.user and request.user.is_authenticated):
            return False
        if getattr(view, "action", None) == "list":
            return bool(request.user.is_staff)
        return True


class IsStaffForWrites(permissions.BasePermission):
    """Authenticated reads (scoped by the view's queryset); writes for staff only."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or bool(request.user.is_staff)
