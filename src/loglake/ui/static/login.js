// The sign-in page: the form posts itself to /session (which answers with a redirect). This shows the
// reason of a refused key, which the server passes back as ?error=..., and carries ?next= (the UI page
// that was asked for) into the form; the server only follows it to a page under /ui/.
const params = new URLSearchParams(location.search);
const error = params.get("error");
if (error) {
  const box = document.getElementById("login-error");
  box.textContent = error;
  box.hidden = false;
}
document.getElementById("next").value = params.get("next") || "";
