"""Roles are groups. Experimenters run trials; statisticians read and export; graders grade."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

EXPERIMENTER = "experimenter"
STATISTICIAN = "statistician"
GRADER = "grader"
ROLES = (EXPERIMENTER, STATISTICIAN, GRADER)


def has_role(user: AbstractBaseUser | AnonymousUser, *roles: str) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_superuser", False):
        return True
    groups = getattr(user, "groups", None)
    return groups is not None and groups.filter(name__in=roles).exists()


def ensure_groups() -> None:
    """Create the role groups with their permissions (idempotent; run after migrate)."""
    from django.contrib.auth.models import Group, Permission

    app_perms = Permission.objects.filter(
        content_type__app_label__in=["trials", "quizzes", "analysis"]
    )
    experimenter, _ = Group.objects.get_or_create(name=EXPERIMENTER)
    # Identifiers (external ids, completion codes) in exports need an explicit grant:
    # give a user the permission analysis.export_identifiers in the admin.
    experimenter.permissions.set(
        app_perms.exclude(codename__startswith="delete_").exclude(codename="export_identifiers")
    )
    statistician, _ = Group.objects.get_or_create(name=STATISTICIAN)
    statistician.permissions.set(app_perms.filter(codename__startswith="view_"))
    Group.objects.get_or_create(name=GRADER)
