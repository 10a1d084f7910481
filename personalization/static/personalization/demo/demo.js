// The /demo/ page's panel: everything it shows comes from the `personalization` DOM event.
// A file rather than inline (the page's Content-Security-Policy allows no inline script),
// loaded at the end of <body> without `defer`, so it listens before personalize.js runs.
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var text = function (id, value) { $(id).textContent = value == null || value === '' ? '–' : value; };
  var p13n = function () { return window.personalize; };
  document.addEventListener('personalization', function (event) {
    var r = event.detail || {};
    var why = r.explanation || {};
    text('p13n-status', 'Personalized by the service (' + (r.variant === 'holdout'
      ? 'holdout: default content on purpose' : 'rule v' + r.rule_version) + ').');
    text('p13n-segment', r.segment);
    text('p13n-confidence', typeof r.confidence === 'number' ? Math.round(r.confidence * 100) + '%' : '');
    text('p13n-variant', r.variant);
    text('p13n-visitor', r.user_id);
    text('p13n-what', why.what);
    text('p13n-why', why.why || r.reasoning);
    text('p13n-so-what', why.so_what);
    var list = $('p13n-contributions');
    list.textContent = '';
    (why.contributions || []).filter(function (c) { return c.segment === r.segment && c.contribution; })
      .slice(0, 5).forEach(function (c) {
        var item = document.createElement('li');
        item.textContent = c.signal + ': ' + c.count + ' × ' + c.weight + ' = +' + c.contribution;
        list.appendChild(item);
      });
  });
  setTimeout(function () {
    var api = p13n();
    if (!api) return text('p13n-status', 'personalize.js did not load: default page.');
    text('p13n-consent', api.consent);
    text('p13n-visitor', api.visitorId);
    if (api.consent !== 'granted') {
      text('p13n-status', 'Consent is ' + api.consent + ' (or Do Not Track is on): nothing is sent.');
    } else if (!api.response) {
      text('p13n-status', 'The API did not answer in time: the default page stays.');
    }
  }, 2500);
  $('p13n-send').addEventListener('click', function () {
    if (p13n()) p13n().flush().then(function () { return p13n().refresh(); });
  });
  $('p13n-grant').addEventListener('click', function () {
    if (p13n()) { p13n().grantConsent(); text('p13n-consent', p13n().consent); }
  });
  $('p13n-forget').addEventListener('click', function () {
    if (p13n()) p13n().revokeConsent();
    location.reload();
  });
})();
