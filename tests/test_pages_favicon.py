"""Every page names its icon (a small SVG served by the service, allowed by the pages'
content security policy), and /favicon.ico, which a browser asks for where a page names
none, answers empty instead of a 404 in the console."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from tests.test_pages import desk_client, desk_url  # noqa: F401 - a fixture

ICON = re.compile(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)">')


def test_favicon_ico_answers_empty_without_signing_in(client):
    answer = client.get("/favicon.ico")
    assert answer.status_code == 204 and answer.get_data() == b""
    assert "no-store" not in answer.headers["Cache-Control"]  # no customer data in it


def test_every_page_names_an_icon_the_policy_allows(client, desk_client):  # noqa: F811
    pages = [
        client.get("/login"),
        desk_client.get(desk_url()),
        desk_client.get(desk_url(channel="fax")),  # the desk's 400 page
        desk_client.get("/dashboard"),  # the pages' error page (a desktop key: 403)
    ]
    assert [p.status_code for p in pages] == [200, 200, 400, 403]
    for page in pages:
        found = ICON.search(page.get_data(as_text=True))
        assert found, page.get_data(as_text=True)[:400]
        href = found.group(1)
        assert href.startswith("/static/")  # 'self', which img-src allows
    policy = pages[0].headers["Content-Security-Policy"]
    assert "img-src 'self'" in policy
    icon = client.get(href)
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert ET.fromstring(icon.get_data()).tag == "{http://www.w3.org/2000/svg}svg"
