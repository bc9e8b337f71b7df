// The UI shell's small amount of behaviour.  Pages work without it; it adds comfort.

function markCurrentNavigation(): void {
  const here = window.location.pathname;
  document.querySelectorAll<HTMLAnchorElement>(".site-nav a").forEach((link) => {
    if (link.pathname === here && !link.hasAttribute("aria-current")) {
      link.setAttribute("aria-current", "page");
    }
  });
}

document.addEventListener("DOMContentLoaded", markCurrentNavigation);
