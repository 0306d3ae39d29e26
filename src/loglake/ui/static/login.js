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
// The page's #hash goes along: the server's redirect here named the page asked for without it (a hash never reaches
// the server), the browser kept it on this page, and the sign-in's redirect back dropped it. (A next= of the UI's own
// signIn() holds its hash already; the server follows next= only to a path under /ui/, hash or not.)
const next = params.get("next") || "";
document.getElementById("next").value = next && !next.includes("#") ? next + location.hash : next;
