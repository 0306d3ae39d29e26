// The sign-in page: the form posts itself to /session (which answers with a redirect). This shows why a
// key was refused, which the server passes back as a reason code (?error=unauthorized), as the fixed
// message the page holds for it (ui/sign_in.py): never the link's own text. It carries ?next= (the UI
// page that was asked for) into the form; the server only follows it to a page under /ui/.
const params = new URLSearchParams(location.search);
const error = params.get("error");
if (error) {
  const box = document.getElementById("login-error");
  const reasons = JSON.parse(box.dataset.reasons);
  box.textContent = Object.hasOwn(reasons, error) ? reasons[error] : reasons[""];
  box.hidden = false;
}
document.getElementById("next").value = params.get("next") || "";
