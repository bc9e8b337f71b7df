// The UI shell's small amount of behaviour.  Every page works without it (forms post,
// links navigate); it adds comfort.  Kept tiny: terminals are low-spec and telework
// runs over remote desktop.

function markCurrentNavigation(): void {
  const here = window.location.pathname;
  document.querySelectorAll<HTMLAnchorElement>(".site-nav a").forEach((link) => {
    if (link.pathname === here && !link.hasAttribute("aria-current")) {
      link.setAttribute("aria-current", "page");
    }
  });
}

// htmx requests that fail say so in Japanese (or the user's language): the texts come
// from the page (data-* attributes of #app-alert, rendered through gettext), so that
// this script holds no UI strings.
function showAlert(kind: "send" | "response"): void {
  const box = document.getElementById("app-alert");
  if (box === null) {
    return;
  }
  const text = kind === "send" ? box.dataset.sendError : box.dataset.responseError;
  box.textContent = text ?? "";
  box.hidden = false;
}

function hideAlert(): void {
  const box = document.getElementById("app-alert");
  if (box !== null) {
    box.hidden = true;
    box.textContent = "";
  }
}

document.addEventListener("DOMContentLoaded", markCurrentNavigation);
document.addEventListener("htmx:sendError", () => showAlert("send"));
document.addEventListener("htmx:responseError", () => showAlert("response"));
document.addEventListener("htmx:beforeRequest", hideAlert);
