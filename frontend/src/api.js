// Same-origin JSON requests with Django's CSRF token, and the sendBeacon variant (beacons
// cannot set headers, so the token and the JSON travel as form fields).

export function csrfToken(doc = document) {
  // The cookie is authoritative when readable (CSRF_COOKIE_HTTPONLY off, the default); the
  // form's hidden field works otherwise.
  const match = doc.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const input = doc.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

/** POSTs `body` as JSON. Never throws: resolves to {status, data}, status 0 when the server
 *  could not be reached or did not answer within `timeoutMs`; data null when not JSON. */
export async function postJSON(url, body, { timeoutMs = 20000 } = {}) {
  const controller = typeof AbortController === "function" ? new AbortController() : null;
  const timer = controller ? setTimeout(() => controller.abort(), timeoutMs) : null;
  try {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfToken(),
        "X-Requested-With": "XMLHttpRequest",
      },
      body: JSON.stringify(body),
      signal: controller ? controller.signal : undefined,
    });
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    return { status: response.status, data };
  } catch {
    return { status: 0, data: null };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** Queues `body` for delivery even if the page is closing. True when the browser accepted it. */
export function sendBeaconForm(url, body) {
  if (typeof navigator === "undefined" || typeof navigator.sendBeacon !== "function") return false;
  const form = new FormData();
  form.append("csrfmiddlewaretoken", csrfToken());
  form.append("payload", JSON.stringify(body));
  try {
    return navigator.sendBeacon(url, form);
  } catch {
    return false;
  }
}
