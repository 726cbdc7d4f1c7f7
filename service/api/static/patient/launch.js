import { startLaunch } from "/static/patient/smart.js";

startLaunch(location.search).catch((error) => {
  const status = document.getElementById("status");
  status.textContent = error.message;
  status.setAttribute("role", "alert");
});
