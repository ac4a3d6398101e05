// Invitation page (docs/api.md, "Invitations"). No inline code: the page
// runs under script-src 'self'. Only same-origin requests are made. The
// token comes from the URL's fragment (#<token>), which browsers never send
// to a server, and travels only in request bodies, so it stays out of
// request lines and logs.
(function () {
  'use strict';

  var TOKEN_RE = /^[a-f0-9]{64}$/;

  function $(id) { return document.getElementById(id); }

  function show(id) {
    ['loading', 'error', 'form-section', 'done'].forEach(function (s) {
      $(s).hidden = s !== id;
    });
  }

  function fail(message) {
    $('error-message').textContent = message;
    show('error');
  }

  // The token is the fragment: /invite/#<token>. It is then removed from
  // the address bar, so it does not stay in the browser's history.
  function tokenFromFragment() {
    var t = (window.location.hash || '').replace(/^#/, '');
    if (!TOKEN_RE.test(t)) { return ''; }
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, '', window.location.pathname);
    }
    return t;
  }

  function request(method, path, body) {
    var opts = { method: method, headers: { 'Accept': 'application/json' }, credentials: 'same-origin' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        return { status: resp.status, data: data || {} };
      });
    });
  }

  function errorText(r) {
    if (r.data && typeof r.data.error === 'string' && r.data.error !== 'Validation failed') {
      return r.data.error;
    }
    if (r.status === 400) { return 'The request was not accepted. Check the password and try again.'; }
    if (r.status === 429) { return 'Too many requests. Wait a minute and try again.'; }
    return 'Something went wrong (HTTP ' + r.status + '). Try again later.';
  }

  function formatDate(iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? iso : d.toLocaleString();
  }

  function formError(message) {
    var el = $('form-error');
    el.textContent = message;
    el.hidden = message === '';
  }

  function manualKey(uri) {
    try {
      var q = uri.indexOf('?');
      var params = new URLSearchParams(q >= 0 ? uri.slice(q + 1) : '');
      return params.get('secret') || '';
    } catch (e) {
      return '';
    }
  }

  function showDone(data) {
    $('done-username').textContent = data.username || '';
    if (typeof data.totpQr === 'string' && data.totpQr.indexOf('data:image/png;base64,') === 0 &&
        typeof data.totpUri === 'string') {
      $('qr').src = data.totpQr;
      $('manual-key').textContent = manualKey(data.totpUri);
      $('totp').hidden = false;
      $('no-totp').hidden = true;
    } else {
      $('totp').hidden = true;
      $('no-totp').hidden = false;
    }
    var login = typeof data.loginUrl === 'string' && /^https:\/\//.test(data.loginUrl) ? data.loginUrl : '/';
    $('login-link').href = login;
    show('done');
  }

  function start() {
    var token = tokenFromFragment();
    if (!token) {
      fail('This invitation link is not valid. Check that you copied the whole link, including the part after #.');
      return;
    }

    request('POST', '/api/invite/lookup', { token: token }).then(function (r) {
      if (r.status !== 200) {
        fail(errorText(r));
        return;
      }
      $('username').value = r.data.username || '';
      $('email').value = r.data.email || '';
      $('expires').textContent = formatDate(r.data.expiresAt);
      show('form-section');
      $('password').focus();
    }, function () {
      fail('The relay could not be reached. Check your connection and reload the page.');
    });

    $('accept-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var pw = $('password').value;
      var confirm = $('confirm').value;
      if (pw.length < 8) { formError('The password must be at least 8 characters.'); return; }
      if (pw.length > 128) { formError('The password must be at most 128 characters.'); return; }
      if (pw !== confirm) { formError('The passwords do not match.'); return; }
      formError('');
      $('submit').disabled = true;
      request('POST', '/api/invite/accept', { token: token, password: pw }).then(function (r) {
        $('submit').disabled = false;
        if (r.status === 200 && r.data.ok) {
          $('password').value = '';
          $('confirm').value = '';
          showDone(r.data);
          return;
        }
        if (r.status === 404 || r.status === 410 || r.status === 409) {
          fail(errorText(r));
          return;
        }
        formError(errorText(r));
      }, function () {
        $('submit').disabled = false;
        formError('The relay could not be reached. Try again.');
      });
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
}());
