import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from ops.services import admin_ensure

pytestmark = pytest.mark.django_db
User = get_user_model()


def test_admin_ensure__no_password_set__generates_one_that_works():
    result = admin_ensure(username="boss", password="")

    user = User.objects.get(username="boss")
    assert result.created
    assert result.password
    assert user.is_superuser
    assert user.is_staff
    assert user.check_password(result.password)


def test_admin_ensure__existing_user_no_password__left_alone():
    User.objects.create_superuser("boss", "b@example.com", "original-pass-123")

    result = admin_ensure(username="boss", password="")

    assert not result.created
    assert result.password is None
    assert User.objects.get(username="boss").check_password("original-pass-123")


def test_admin_ensure__explicit_password__applied_to_existing_user():
    User.objects.create_user("boss", "b@example.com", "original-pass-123")

    admin_ensure(username="boss", password="new-pass-456")

    user = User.objects.get(username="boss")
    assert user.check_password("new-pass-456")
    assert user.is_superuser


def test_ensure_admin_command__from_settings__prints_generated_password(settings, capsys):
    settings.ADMIN_USERNAME = "owner"
    settings.ADMIN_PASSWORD = ""

    call_command("ensure_admin")

    out = capsys.readouterr().out
    password = out.split("password: ")[1].split()[0]
    assert User.objects.get(username="owner").check_password(password)
