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


class ErasureLedgerEntry(models.Model):
    """One erased visitor, as a keyed hash of their id (ops/erasure.py): never the id itself.

    Written in the transaction that erases the visitor, so an acknowledged erasure is recorded
    by any role that can write the database; `backup_restore` re-applies every entry."""

    visitor_hash = models.CharField(max_length=64, unique=True)
    erased_at = models.DateTimeField()

    class Meta:
        verbose_name = "erasure ledger entry"
        verbose_name_plural = "erasure ledger"

    def __str__(self) -> str:
        return f"{self.visitor_hash[:12]}… erased {self.erased_at:%Y-%m-%d %H:%M}"
