from django.db import models


class AdminApiAccess(models.Model):
    """No table: only carries the permission that lets a staff user use the admin API.

    Grant `ops | admin api access | Can use the admin API` to a user or group in Django admin;
    superusers have it implicitly.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("use_admin_api", "Can use the admin API")]
        verbose_name = "admin API access"

    def __str__(self) -> str:
        return "admin API access"
