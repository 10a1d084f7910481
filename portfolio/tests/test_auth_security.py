"""Password storage: Argon2 for new and changed passwords, older hashes upgraded on login."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db


def test_password__new_or_changed__argon2():
    user = User.objects.create_user("alice", password="first-long-password-1")
    assert user.password.startswith("argon2$argon2id$")

    user.set_password("second-long-password-2")
    user.save()

    assert User.objects.get(pk=user.pk).password.startswith("argon2$argon2id$")


def test_password__old_pbkdf2_hash__upgraded_on_login():
    user = User.objects.create_user("bob")
    user.password = make_password("legacy-long-password-3", hasher="pbkdf2_sha256")
    user.save()

    assert authenticate(username="bob", password="legacy-long-password-3") is not None

    assert User.objects.get(pk=user.pk).password.startswith("argon2$")
