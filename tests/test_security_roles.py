"""Every API route needs a key, and each role reaches only the routes the README gives it:
a desktop key the contact's calls, a manager key reports and pools read-only, an engineer
key models and reports, an admin key everything."""

from __future__ import annotations

from service.auth import ROLES, allowed
from service.errors import route_template

ALL = frozenset(ROLES)
CONTACT = frozenset({"desktop", "admin"})
ENGINEERING = frozenset({"engineer", "admin"})
ADMIN = frozenset({"admin"})
# (method, route): the roles allowed, as the README says.
ROUTES: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/v1/decisions"): CONTACT,
    ("GET", "/v1/decisions/<decision_id>"): CONTACT,
    ("POST", "/v1/decisions/<decision_id>/outcome"): CONTACT,
    ("POST", "/v1/decisions/<decision_id>/survey"): CONTACT,
    ("POST", "/v1/customers/<customer_id>/events"): CONTACT,
    ("GET", "/v1/customers/<customer_id>"): ADMIN,
    ("DELETE", "/v1/customers/<customer_id>"): ADMIN,
    ("GET", "/v1/models"): ENGINEERING,
    ("POST", "/v1/models/<version>/promote"): ENGINEERING,
    ("POST", "/v1/models/rollback"): ENGINEERING,
    ("POST", "/v1/models/<version>/shadow"): ENGINEERING,
    ("DELETE", "/v1/models/shadow"): ENGINEERING,
    ("GET", "/v1/pools"): ALL,  # the routing platform reads them with its desktop key
    ("PUT", "/v1/pools"): ADMIN,
    ("PUT", "/v1/pools/<pool>/availability"): CONTACT,
    ("POST", "/v1/pools/rebuild"): ADMIN,
    ("GET", "/v1/reports/value"): frozenset({"manager", "engineer", "admin"}),
    ("GET", "/v1/reports/drift"): frozenset({"manager", "engineer", "admin"}),
    ("GET", "/v1/reports/organic"): frozenset({"manager", "engineer", "admin"}),
    ("GET", "/v1/audit"): ADMIN,
}


def _api_routes(app) -> set[tuple[str, str]]:
    return {
        (method, route_template(rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_every_api_route_is_in_the_role_table(app):
    """A new route must be placed here, with its roles, before it ships."""
    assert _api_routes(app) == set(ROUTES)


def test_each_role_reaches_only_its_routes(app, client, keys):
    """Checked on each route's own view; refused roles and a missing key are asked for
    real (refused before anything runs), allowed ones are not: they would roll the
    registry back or rebuild the pools of the whole suite."""
    views = {
        (method, route_template(rule)): app.view_functions[rule.endpoint]
        for rule in app.url_map.iter_rules()
        for method in rule.methods
    }
    for (method, route), roles in ROUTES.items():
        permission = views[(method, route)].vea_permission
        assert {role for role in ROLES if allowed(role, permission)} == roles, route
        path = route.replace("<", "x-").replace(">", "")
        assert client.open(path, method=method, json={}).status_code == 401, route
        for role in ALL - roles:
            answer = client.open(path, method=method, json={}, headers=keys[role])
            assert answer.status_code == 403, (method, route, role, answer.status_code)
