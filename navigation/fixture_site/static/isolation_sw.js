// The isolation leak test's service worker (isolation.html?do=write registers it): it only exists.
self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (ev) { ev.waitUntil(self.clients.claim()); });
