/*! personalize.js: collects the portfolio's events and applies its personalization.
 * Plain ES2017, no dependencies, fails safe: any error leaves the page as it is.
 * Usage and options: docs/FRONTEND.md. */
(() => {
  'use strict';
  const w = window;
  const d = document;
  if (w.personalize) return; // loaded twice

  const safe = (fn) => function () {
    try {
      return fn.apply(this, arguments);
    } catch (e) {
      return undefined;
    }
  };
  const script = d.currentScript || d.querySelector('script[src*="personalize"]');
  const data = (script && script.dataset) || {};
  const given = w.PersonalizeConfig || {};
  // window.PersonalizeConfig wins over the script tag's data-* attributes.
  const opt = (name, fallback) => {
    const v = given[name] !== undefined ? given[name] : data[name];
    if (v === undefined || v === null || v === '') return fallback;
    if (typeof fallback === 'boolean') return v !== false && v !== 'false';
    if (typeof fallback === 'number') return Number(v) > 0 ? Number(v) : fallback;
    return String(v);
  };
  let origin = location.origin;
  try {
    origin = new URL(script.src, location.href).origin;
  } catch (e) { /* inline or missing tag: this page's origin */ }
  const endpoint = opt('endpoint', origin).replace(/\/+$/, '');
  const interval = opt('flushInterval', 5000);
  const timeout = opt('timeout', 1500);
  const badgeText = opt('badgeText', 'Featured');
  const domApply = opt('apply', true);
  const styles = opt('styles', true);
  const autoCollect = opt('autoCollect', true);

  // Do Not Track and Global Privacy Control win over everything, grantConsent() included.
  const nav = navigator;
  const dnt = nav.doNotTrack === '1' || w.doNotTrack === '1' || nav.globalPrivacyControl === true;
  let consent = opt('consent', 'granted');
  // Anything but granted/pending/denied fails closed: pending.
  if (dnt || consent === 'denied') consent = 'denied';
  else if (consent !== 'granted') consent = 'pending';

  const ID_RE = /^[A-Za-z0-9._-]{1,200}$/;
  const NAME_RE = /^[A-Za-z0-9_]{1,100}$/;
  const VID = 'p13n_vid';
  const VIEWS = 'p13n_views';
  const CACHE = 'p13n_resp';
  const rnd = () => {
    try {
      return crypto.getRandomValues(new Uint32Array(1))[0];
    } catch (e) {
      return Math.floor(Math.random() * 4294967296);
    }
  };
  // get: store(kind, key); set: store(kind, key, value) → true; remove: value null.
  const store = (kind, key, value) => {
    try {
      const s = w[kind];
      if (value === undefined) return s.getItem(key);
      if (value === null) s.removeItem(key);
      else s.setItem(key, value);
      return true;
    } catch (e) {
      return null;
    }
  };
  const attr = (el, name) => el.getAttribute(name) || '';
  const cookie = (name) => {
    const m = d.cookie.match(new RegExp('(?:^|;\\s*)' + name + '=([^;]*)'));
    return m ? decodeURIComponent(m[1]) : '';
  };
  const setCookie = (value, age) => {
    d.cookie = VID + '=' + value + ';path=/;max-age=' + age + ';SameSite=Lax';
  };

  // The GA4 client id when gtag.js set one (GA1.1.<a>.<b> → <a>.<b>), else our own, GA-shaped.
  const resolveId = () => {
    const own = opt('visitorId', '');
    if (ID_RE.test(own)) return own;
    const ga = cookie('_ga').match(/^GA\d+\.\d+\.(\d+\.\d+)$/);
    if (ga) return ga[1];
    let id = store('localStorage', VID) || cookie(VID);
    if (!ID_RE.test(id || '')) id = (rnd() >>> 1) + '.' + Math.floor(Date.now() / 1000);
    if (!store('localStorage', VID, id)) setCookie(id, 63072000);
    return id;
  };

  // --- Queue and delivery --------------------------------------------------------------------
  const pageId = rnd().toString(36) + rnd().toString(36);
  let seq = 0;
  let vid = null;
  let queue = [];
  let first = true;
  let timer = 0;
  let pauseUntil = 0;
  let last = null;
  let sentSegment = '';

  const track = safe((name, params, at) => {
    if (consent === 'denied' || typeof name !== 'string' || !NAME_RE.test(name)) return false;
    const p = Object.assign({}, params && typeof params === 'object' ? params : {});
    if (first) {
      p.page_location = location.href.slice(0, 1000);
      if (d.referrer) p.page_referrer = d.referrer.slice(0, 420);
    }
    // The server rejects a whole batch for one bad event: drop it here instead.
    if (new Blob([JSON.stringify(p)]).size > 10000) return false;
    first = false;
    queue.push({
      event_name: name,
      event_params: p,
      // A given time (gtag's `timestamp`) only if the API will take it: after 2000, not ahead.
      event_timestamp: at > 946684800000 && at < Date.now() + 36e5 ? Math.round(at) : Date.now(),
      event_id: pageId + '-' + ++seq,
      n: 0,
    });
    if (queue.length > 1000) queue.splice(0, queue.length - 1000);
    schedule();
    return true;
  });

  const schedule = () => {
    if (!timer && consent === 'granted') timer = setTimeout(() => flush(false), interval);
  };

  const requeue = (batch) => {
    queue = batch.filter((e) => ++e.n < 4).concat(queue).slice(-1000);
    schedule();
  };

  const send = (batch, beacon) => {
    const url = endpoint + '/api/events';
    const body = JSON.stringify({
      events: batch.map((e) => ({
        event_name: e.event_name,
        user_pseudo_id: vid,
        event_params: e.event_params,
        event_timestamp: e.event_timestamp,
        event_id: e.event_id,
      })),
    });
    // A string body is text/plain: a CORS "simple" request, so no preflight.
    try {
      if (beacon && nav.sendBeacon && nav.sendBeacon(url, body)) return Promise.resolve();
    } catch (e) { /* fall back to fetch */ }
    return fetch(url, { method: 'POST', body, credentials: 'omit', keepalive: body.length < 60000 })
      .then((r) => {
        if (r.status === 429 || r.status >= 500) {
          const wait = Number(r.headers.get('Retry-After')); // readable cross-origin if exposed
          if (wait > 0) pauseUntil = Date.now() + wait * 1000;
          requeue(batch);
        } // other 4xx: the batch can never succeed; drop it
      })
      .catch(() => requeue(batch));
  };

  const flush = (beacon) => {
    clearTimeout(timer);
    timer = 0;
    if (consent !== 'granted' || !vid || !queue.length) return Promise.resolve();
    if (!beacon && Date.now() < pauseUntil) {
      schedule();
      return Promise.resolve();
    }
    const jobs = [];
    // sendBeacon and keepalive fetch are capped near 64 kB in flight: smaller batches then.
    while (queue.length) jobs.push(send(queue.splice(0, beacon ? 100 : 500), beacon));
    return Promise.all(jobs).then(() => undefined, () => undefined);
  };

  // --- Personalization -----------------------------------------------------------------------
  let slots = null;
  const reorder = (ids) => {
    if (!Array.isArray(ids) || !ids.length) return;
    // A marker before each section keeps its slot, so re-applying never compounds.
    if (!slots) {
      slots = Array.from(d.querySelectorAll('section[id]'), (s, i) => {
        const m = d.createComment('p13n');
        s.parentNode.insertBefore(m, s);
        return { s, m, i };
      });
    }
    const rank = (x) => {
      const k = ids.indexOf(x.s.id);
      return k < 0 ? ids.length + x.i : k;
    };
    const groups = new Map();
    slots.forEach((x) => {
      const p = x.m.parentNode;
      if (p) (groups.get(p) || groups.set(p, []).get(p)).push(x);
    });
    groups.forEach((list) => {
      const sorted = list.slice().sort((a, b) => rank(a) - rank(b));
      list.forEach((x, k) => x.m.parentNode.insertBefore(sorted[k].s, x.m.nextSibling));
    });
  };

  const badge = (ids) => {
    const on = new Set(Array.isArray(ids) ? ids : []);
    d.querySelectorAll('[data-project-id]').forEach((el) => {
      const id = el.getAttribute('data-project-id');
      // A card and a link inside it may both name the project: badge the card only.
      const outer = el.parentElement && el.parentElement.closest('[data-project-id]');
      const hit = on.has(id) && !(outer && attr(outer, 'data-project-id') === id);
      el.classList.toggle('personalize-featured', hit);
      let b = el.querySelector(':scope > .personalize-badge');
      if (hit && !b) {
        b = d.createElement('span');
        b.className = 'personalize-badge';
        b.textContent = badgeText;
        el.insertBefore(b, el.firstChild);
      } else if (!hit && b) b.remove();
    });
  };

  const highlight = (names) => {
    const on = new Set(Array.isArray(names) ? names : []);
    d.querySelectorAll('[data-skill-name]').forEach((el) => {
      el.classList.toggle('personalize-highlight', on.has(el.getAttribute('data-skill-name')));
    });
  };

  let styled = false;
  const apply = (r, fresh) => {
    if (!r || typeof r.segment !== 'string') return;
    last = r;
    if (domApply) {
      if (styles && !styled) {
        styled = true;
        const st = d.createElement('style');
        st.textContent = ':where(.personalize-badge){display:inline-block;margin:0 .5em .4em 0;' +
          'padding:.1em .6em;border-radius:1em;background:#ffd54f;color:#222;font-size:.75em;' +
          'font-weight:600}:where(.personalize-featured){outline:2px solid #ffb300;' +
          'outline-offset:2px}:where(.personalize-highlight){font-weight:700}';
        d.head.appendChild(st);
      }
      safe(reorder)(r.priority_sections);
      safe(badge)(r.featured_projects);
      safe(highlight)(r.highlight_skills);
      d.documentElement.setAttribute('data-segment', r.segment);
    }
    if (fresh && r.segment !== sentSegment) {
      sentSegment = r.segment;
      track('personalization_applied', { segment: r.segment });
    }
    d.dispatchEvent(new CustomEvent('personalization', { detail: r }));
  };

  const refresh = () => {
    if (consent !== 'granted' || !vid) return Promise.resolve(null);
    const ctl = w.AbortController ? new AbortController() : null;
    const t = setTimeout(() => ctl && ctl.abort(), timeout);
    const url = endpoint + '/api/personalization?user_id=' + encodeURIComponent(vid);
    return fetch(url, { credentials: 'omit', signal: ctl ? ctl.signal : undefined })
      .then((r) => (r.ok ? r.json() : null))
      .then((r) => {
        if (!r || typeof r.segment !== 'string') return null;
        store('sessionStorage', CACHE, JSON.stringify({ u: vid, r }));
        safe(apply)(r, true);
        return r;
      })
      .catch(() => null)
      .then((r) => {
        clearTimeout(t);
        return r;
      });
  };

  // --- Collection from the DOM ---------------------------------------------------------------
  const counted = {};
  // A "view" is a click or deep read of a project, counted once per page across visits.
  const viewed = (id) => {
    if (!id || counted[id]) return;
    counted[id] = 1;
    if (consent !== 'granted') return; // nothing stored before consent
    let views = {};
    try {
      views = JSON.parse(store('localStorage', VIEWS) || '{}') || {};
    } catch (e) { /* reset */ }
    const n = (views[id] = (Number(views[id]) || 0) + 1);
    store('localStorage', VIEWS, JSON.stringify(views));
    if (n > 1) track('repeat_view', { item_id: id, view_count: n });
  };

  const watchers = [];
  const hidden = () => d.visibilityState === 'hidden';
  // Time each element spends "in" view; done(el, ms) when it leaves or the page hides.
  const watch = (selector, thresholds, isIn, done) => {
    const active = new Map(); // element → start (0 while the page is hidden)
    const stop = (el) => {
      const t0 = active.get(el);
      if (t0) done(el, Date.now() - t0);
    };
    const io = new IntersectionObserver(safe((entries) => entries.forEach((e) => {
      if (isIn(e)) {
        if (!active.has(e.target)) active.set(e.target, hidden() ? 0 : Date.now());
      } else if (active.has(e.target)) {
        stop(e.target);
        active.delete(e.target);
      }
    })), { threshold: thresholds });
    d.querySelectorAll(selector).forEach((el) => io.observe(el));
    watchers.push({
      pause: () => active.forEach((t0, el) => {
        stop(el);
        active.set(el, 0);
      }),
      resume: () => active.forEach((t0, el) => {
        if (!t0) active.set(el, Date.now());
      }),
    });
  };

  const collect = () => {
    if (w.IntersectionObserver) {
      const half = (e) => e.isIntersecting && e.intersectionRatio >= 0.5;
      watch('[data-project-id]', [0, 0.5, 0.75, 1], half, (el, ms) => {
        if (ms <= 3000) return;
        const id = attr(el, 'data-project-id');
        track('deep_read', { project_id: id, duration: ms });
        viewed(id);
      });
      // A section counts as seen when half of it, or half the viewport, shows it.
      const seen = (e) => {
        const h = e.rootBounds ? e.rootBounds.height : w.innerHeight;
        return half(e) || (e.isIntersecting && e.intersectionRect.height >= h / 2);
      };
      watch('section[id]', [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1], seen, (el, ms) => {
        if (ms >= 1000) track('section_view', { section_name: el.id, time_spent: ms });
      });
    }

    d.addEventListener('click', safe((e) => {
      const t = e.target;
      if (!t || !t.closest) return;
      let el = t.closest('[data-project-id]');
      if (el) {
        const id = attr(el, 'data-project-id');
        track('project_click', { project_id: id, category: attr(el, 'data-category') });
        viewed(id);
      }
      if ((el = t.closest('[data-contact-type]'))) {
        track('contact_intent', { contact_type: attr(el, 'data-contact-type') });
      }
      if (t.closest('[data-action="download-resume"]')) track('download_resume', {});
      if ((el = t.closest('[data-career-company]'))) {
        track('career_timeline_interact', {
          company: attr(el, 'data-career-company'),
          position: attr(el, 'data-career-position'),
        });
      }
      el = t.closest('a[href]');
      if (el && /^https?:$/.test(el.protocol) && el.host !== location.host) {
        const host = el.hostname;
        const repo = /(^|\.)(github\.com|gitlab\.com|bitbucket\.org)$/.test(host);
        const type = attr(el, 'data-link-type') ||
          (repo ? 'repository' : /(^|\.)linkedin\.com$/.test(host) ? 'linkedin' : 'external');
        track('external_link_click', { link_type: type, destination: el.href.slice(0, 500) });
      }
    }), true);

    let hoverEl = null;
    let hoverAt = 0;
    const endHover = () => {
      if (!hoverEl) return;
      const ms = Date.now() - hoverAt;
      const name = attr(hoverEl, 'data-skill-name');
      if (ms > 500) track('skill_hover', { skill_name: name, duration: ms });
      hoverEl = null;
    };
    d.addEventListener('mouseover', safe((e) => {
      const el = e.target && e.target.closest ? e.target.closest('[data-skill-name]') : null;
      if (el === hoverEl) return;
      endHover();
      if (el) {
        hoverEl = el;
        hoverAt = Date.now();
      }
    }), true);
    d.addEventListener('mouseout', safe((e) => {
      if (hoverEl && !(e.relatedTarget && hoverEl.contains(e.relatedTarget))) endHover();
    }), true);

    const marks = [25, 50, 75, 100];
    let ticking = false;
    w.addEventListener('scroll', safe(() => {
      if (ticking) return;
      ticking = true;
      requestAnimationFrame(safe(() => {
        ticking = false;
        const pct = ((w.scrollY + w.innerHeight + 2) / d.documentElement.scrollHeight) * 100;
        while (marks.length && pct >= marks[0]) {
          track('scroll_depth', { milestone: marks.shift() + '%' });
        }
      }));
    }), { passive: true });
  };

  // Mirror gtag('event', ...) calls; names collected from the DOM above are not mirrored twice.
  const OWN = new RegExp('^(personalization_applied' + (autoCollect
    ? '|project_click|deep_read|repeat_view|section_view|skill_hover|contact_intent' +
      '|download_resume|career_timeline_interact|external_link_click|scroll_depth' : '') + ')$');
  const mirror = (args) => {
    if (!args || args[0] !== 'event' || typeof args[1] !== 'string' || OWN.test(args[1])) return;
    const src = args[2] || {};
    const p = {};
    Object.keys(src).forEach((k) => {
      const skip = /^(send_to|event_callback|event_timeout|timestamp)$/.test(k);
      if (!skip && typeof src[k] !== 'function') p[k] = src[k];
    });
    track(args[1], p, typeof src.timestamp === 'number' ? src.timestamp : 0);
  };
  const wrapGtag = () => {
    if (typeof w.gtag === 'function') {
      const gtag = w.gtag;
      w.gtag = function () {
        safe(mirror)(arguments);
        return gtag.apply(this, arguments);
      };
    } else if (Array.isArray(w.dataLayer)) {
      const dl = w.dataLayer;
      const push = dl.push;
      dl.push = function () {
        Array.prototype.forEach.call(arguments, safe(mirror));
        return push.apply(dl, arguments);
      };
    }
  };

  // --- Lifecycle -----------------------------------------------------------------------------
  const start = () => {
    vid = resolveId();
    let cached = null;
    try {
      cached = JSON.parse(store('sessionStorage', CACHE) || 'null');
    } catch (e) { /* ignore */ }
    if (cached && cached.u === vid) safe(apply)(cached.r, false);
    refresh();
    schedule();
  };

  const onHide = safe(() => {
    watchers.forEach((x) => x.pause());
    flush(true);
  });

  w.personalize = {
    track: safe((name, params) => track(name, params)),
    flush: () => safe(flush)(false) || Promise.resolve(),
    refresh: () => safe(refresh)() || Promise.resolve(null),
    grantConsent: safe(() => {
      if (dnt || consent === 'granted') return;
      consent = 'granted';
      start();
    }),
    revokeConsent: safe(() => {
      consent = 'denied';
      queue = [];
      vid = null;
      [VID, VIEWS].forEach((k) => store('localStorage', k, null));
      store('sessionStorage', CACHE, null);
      if (cookie(VID)) setCookie('', 0);
    }),
    get visitorId() {
      return vid;
    },
    get consent() {
      return consent;
    },
    get response() {
      return last;
    },
  };

  const init = safe(() => {
    if (dnt) return; // nothing collected, stored or sent
    if (autoCollect) collect();
    if (opt('mirrorGtag', true)) wrapGtag();
    d.addEventListener('visibilitychange', safe(() => {
      if (hidden()) onHide();
      else watchers.forEach((x) => x.resume());
    }));
    w.addEventListener('pagehide', onHide);
    if (consent === 'granted') start();
  });
  if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', init);
  else init();
})();
