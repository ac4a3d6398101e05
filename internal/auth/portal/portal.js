"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(window.location.search);
  var rd = params.get("rd") || "";
  var views = ["login", "totp", "done"];

  function show(view) {
    views.forEach(function (v) { $(v).hidden = v !== view; });
    var focus = { login: "username", totp: "code" }[view];
    if (focus) { $(focus).focus(); }
  }
  function message(text, info) {
    var m = $("msg");
    m.textContent = text || "";
    m.className = info ? "msg info" : "msg";
    m.hidden = !text;
  }
  function api(method, path, body) {
    var opts = { method: method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (j) {
        return { ok: res.ok && j.status === "OK", status: res.status, body: j };
      });
    });
  }
  function busy(form, on) {
    Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) { b.disabled = on; });
  }
  function state() {
    return api("GET", "/api/state").then(function (r) {
      var d = (r.body && r.body.data) || {};
      if (d.authentication_level >= 2) {
        $("who").textContent = d.username;
        show("done");
      } else if (d.authentication_level === 1) {
        show("totp");
      } else {
        show("login");
      }
    }, function () { message("The sign-in service is not reachable. Try again in a moment."); show("login"); });
  }
  function logout() {
    return api("POST", "/api/logout", {}).then(function () {
      message("You are signed out.", true);
      show("login");
    });
  }

  $("login").addEventListener("submit", function (e) {
    e.preventDefault();
    var f = e.target;
    busy(f, true);
    message("");
    api("POST", "/api/firstfactor", {
      username: $("username").value,
      password: $("password").value,
      keepMeLoggedIn: $("remember").checked,
      targetURL: rd
    }).then(function (r) {
      busy(f, false);
      $("password").value = "";
      if (r.ok) {
        show("totp");
        api("GET", "/api/state").then(function (s) {
          var d = (s.body && s.body.data) || {};
          if (d.authentication_level === 1 && !d.has_totp) {
            message("No authenticator app is set up for this account yet. Ask the administrator to reset your two-factor code.", true);
          }
        });
        return;
      }
      message(r.body.message || "Sign-in failed.");
    }, function () { busy(f, false); message("The sign-in service is not reachable."); });
  });

  $("totp").addEventListener("submit", function (e) {
    e.preventDefault();
    var f = e.target;
    busy(f, true);
    message("");
    api("POST", "/api/secondfactor/totp", { token: $("code").value, targetURL: rd }).then(function (r) {
      busy(f, false);
      $("code").value = "";
      if (r.ok) {
        var red = r.body.data && r.body.data.redirect;
        if (red) { window.location.assign(red); return; }
        state();
        return;
      }
      if (r.status === 401) {
        // The half session may have expired: start again if so.
        api("GET", "/api/state").then(function (s) {
          var d = (s.body && s.body.data) || {};
          if (!d.authentication_level) { show("login"); }
        });
      }
      message(r.body.message || "Verification failed.");
    }, function () { busy(f, false); message("The sign-in service is not reachable."); });
  });

  $("cancel").addEventListener("click", logout);
  $("logout").addEventListener("click", logout);

  // /logout only offers the button: signing out takes a POST from this
  // page, so a link elsewhere cannot sign anyone out.
  state().then(function () {
    if (window.location.pathname === "/logout" && !$("done").hidden) {
      message("Press Sign out to end your session on every app.", true);
    }
  });
})();
