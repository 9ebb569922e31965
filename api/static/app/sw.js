// The app's service worker: the shell (pages, scripts, styles, catalogues, icons, the signing library) is kept in a
// cache so the app opens on a slow or absent connection. App files are fetched from the network first and the cache
// refreshed with what arrives, so a new version is picked up as soon as the phone is online; offline, the cached
// copy answers. The API (/v1) is never cached: balances and statuses are shown live or not at all.
//
// What the shell is: the files below, which nothing imports, plus every module app.js reaches through its static
// imports (read from the files themselves at install), so a screen an area adds to app.js is cached without
// being listed here. Installing fails, and the previous version stays, if a listed file is missing.
const CACHE = "loanledger-app-v3";
const ENTRY = "app.js";
const LOCALES = ["zh-CN", "en"];
const AREAS = ["core", "wallet", "kyc", "loans", "pay"]; // core/i18n.js's AREAS: each area's catalogue in each locale
const FILES = ["./", "app.css", "manifest.webmanifest", "icon.svg", "icon-maskable.svg", "icon-192.png",
               "icon-512.png", ...AREAS.flatMap((area) => LOCALES.map((locale) => `messages/${area}.${locale}.json`))];
// Relative module specifiers in `import ... from "./x.js"`, `export ... from "../y.js"` and `import "./z.js"`.
const SPECIFIER = /\b(?:from|import)\s*["'](\.{1,2}\/[^"']+\.js)["']/g;

async function keep(cache, url) {
  const response = await fetch(url, { cache: "no-cache" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  await cache.put(url, response.clone());
  return response;
}

// The static import graph from `entry`, each module cached as it is read.
async function keepModules(cache, entry) {
  const seen = new Set();
  const queue = [new URL(entry, self.registration.scope).href];
  while (queue.length) {
    const url = queue.shift();
    if (seen.has(url)) continue;
    seen.add(url);
    const response = await keep(cache, url);
    if (url.includes("/vendor/")) continue; // a library ships as one file: nothing of ours to follow in it
    const text = await response.text();
    for (const [, specifier] of text.matchAll(SPECIFIER)) queue.push(new URL(specifier, url).href);
  }
}

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE)
    .then((cache) => Promise.all([cache.addAll(FILES), keepModules(cache, ENTRY)]))
    .then(() => self.skipWaiting()));
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
