// The sign-in page: the form posts itself to /session (which answers with a redirect); this only shows
// the reason of a refused key, which the server passes back as ?error=...
const error = new URLSearchParams(location.search).get("error");
if (error) {
  const box = document.getElementById("login-error");
  box.textContent = error;
  box.hidden = false;
}
