"""A ``requests.Session`` that skips merging settings it does not have.

For every request, requests merges the session's headers, params, auth, cookies and
environment into the request's, through checks that cost about a third of a small request's
CPU before anything is sent. A session with no cookies, auth, params, proxies or environment
(``trust_env`` off), as the provider sessions are, merges only its headers, by hand; any
session that has one of them takes requests' own path, so the result is the same request.
"""

from __future__ import annotations

import requests
from requests.cookies import RequestsCookieJar
from requests.hooks import default_hooks
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict


class LeanSession(requests.Session):
    def _plain(self) -> bool:
        return not (self.trust_env or self.auth or self.params or self.proxies
                    or len(self.cookies) or self.hooks != default_hooks())

    def prepare_request(self, request):
        if request.cookies or not self._plain():
            return super().prepare_request(request)
        headers = CaseInsensitiveDict(self.headers)
        headers.update(request.headers or {})
        for name in [name for name, value in headers.items() if value is None]:
            del headers[name]  # a None header removes the session's, as requests does
        prepared = PreparedRequest()
        prepared.prepare(method=request.method.upper(), url=request.url, files=request.files,
                         data=request.data, json=request.json, headers=headers,
                         params=request.params, auth=request.auth, cookies=RequestsCookieJar(),
                         hooks=request.hooks)
        return prepared

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        if proxies or not self._plain():
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        return {"proxies": {}, "stream": self.stream if stream is None else stream,
                "verify": self.verify if verify is None else verify,
                "cert": self.cert if cert is None else cert}
