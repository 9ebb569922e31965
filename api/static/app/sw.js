// The app's service worker: the shell (pages, scripts, styles, catalogues, the signing library) is kept in a cache
// so the app opens on a slow or absent connection. App files are fetched from the network first and the cache
// refreshed with what arrives, so a new version is picked up as soon as the phone is online; offline, the cached
// copy answers. The API (/v1) is never cached: balances and statuses are shown live or not at all.
const CACHE = "loanledger-app-v1";
const SHELL = ["./", "app.css", "app.js", "manifest.webmanifest", "icon.svg",
               "core/api.js", "core/dom.js", "core/format.js", "core/i18n.js", "core/session.js", "core/wallet.js",
               "vendor/ethers-6.17.0.min.js"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin || !url.pathname.startsWith("/app/")) return;
  event.respondWith(fetch(event.request).then((response) => {
    if (response.ok) {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put(event.request, copy));
    }
    return response;
  }).catch(() => caches.match(event.request, { ignoreSearch: true })
    .then((cached) => cached || new Response("offline", { status: 503, statusText: "offline" }))));
});
