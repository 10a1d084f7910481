import pytest
from django.contrib.auth import get_user_model

from analytics.models import Event, MeasurementStream, RejectedEvent
from analytics.services import RejectedIn, rejected_events_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("root", "r@example.com", "pw-123456789")
    client.force_login(user)
    return client


def test_stream_admin__rotate_secret__new_secret_and_timestamp(staff_client):
    stream = MeasurementStream.objects.create(name="site", measurement_id="G-TEST1")
    old = stream.api_secret

    response = staff_client.post(
        "/admin/analytics/measurementstream/",
        {"action": "rotate_api_secret", "_selected_action": [stream.pk]},
    )

    stream.refresh_from_db()
    assert response.status_code == 302
    assert stream.api_secret != old
    assert len(stream.api_secret) >= 24
    assert stream.secret_rotated_at is not None


@pytest.mark.parametrize(
    "path",
    [
        "/admin/analytics/event/",
        "/admin/analytics/visitor/",
        "/admin/analytics/rejectedevent/",
        "/admin/analytics/measurementstream/",
        "/admin/analytics/ga4exportupload/",
        "/admin/analytics/ga4dailyaggregate/",
    ],
)
def test_admin_changelists__staff__render(staff_client, path):
    reasons = [{"field": "body", "message": "x"}]
    rejected_events_store(source="mp", items=[RejectedIn(payload="garbage", reasons=reasons)])

    assert staff_client.get(path).status_code == 200


def test_event_admin__read_only__no_add(staff_client):
    assert staff_client.get("/admin/analytics/event/add/").status_code == 403
    assert Event.objects.count() == 0
    assert RejectedEvent.objects.count() == 0
