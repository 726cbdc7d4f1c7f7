// SMART App Launch 2.x client of the patient view (public client, authorization code + PKCE S256).
// launch.js starts the launch; worksheet.js finishes it. Nothing here is sent to another origin
// than the one the EHR named in `iss`.

export const CLIENT_ID = "oncoresponse-patient-view";
export const REDIRECT_PATH = "/app/patient/";
// What the page reads, as SMART v2 patient scopes.
export const SCOPES = [
  "patient/Patient.rs",
  "patient/Observation.rs",
  "patient/BodyStructure.rs",
  "patient/ImagingStudy.rs",
  "patient/MedicationAdministration.rs",
  "patient/Procedure.rs",
];
const SESSION_KEY = "oncoresponse.smart";

function base64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function randomVerifier() {
  // RFC 7636 section 4.1: 43 to 128 characters; 48 random bytes give 64.
  return base64url(crypto.getRandomValues(new Uint8Array(48)));
}

export async function challengeOf(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

export async function startLaunch(search) {
  const params = new URLSearchParams(search);
  const launch = params.get("launch");
  // Standalone launch (no iss): the service's own demo EHR.
  const iss = (params.get("iss") || `${location.origin}/smart`).replace(/\/$/, "");
  const answer = await fetch(`${iss}/.well-known/smart-configuration`, { headers: { Accept: "application/json" } });
  if (!answer.ok) throw new Error(`The EHR's SMART configuration could not be read (HTTP ${answer.status})`);
  const config = await answer.json();
  if (!(config.code_challenge_methods_supported || []).includes("S256")) {
    throw new Error("The EHR does not support PKCE S256; the lesion view will not launch without it");
  }
  const verifier = randomVerifier();
  const state = randomVerifier();
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({ state, verifier, iss, tokenEndpoint: config.token_endpoint }));
  const query = new URLSearchParams({
    response_type: "code",
    client_id: CLIENT_ID,
    redirect_uri: `${location.origin}${REDIRECT_PATH}`,
    scope: [launch ? "launch" : "launch/patient", ...SCOPES].join(" "),
    state,
    aud: iss,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: "S256",
  });
  if (launch) query.set("launch", launch);
  location.assign(`${config.authorization_endpoint}?${query}`);
}

export async function finishLaunch(search) {
  const params = new URLSearchParams(search);
  if (params.get("error")) throw new Error(`The EHR refused the launch: ${params.get("error_description") || params.get("error")}`);
  const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  if (!saved || params.get("state") !== saved.state) {
    throw new Error("This page was not opened by a launch of the lesion view (state mismatch); open it from the EHR");
  }
  sessionStorage.removeItem(SESSION_KEY);
  const answer = await fetch(saved.tokenEndpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code") || "",
      redirect_uri: `${location.origin}${REDIRECT_PATH}`,
      client_id: CLIENT_ID,
      code_verifier: saved.verifier,
    }),
  });
  const token = await answer.json();
  if (!answer.ok) throw new Error(`The EHR did not issue a token: ${token.error_description || token.error}`);
  history.replaceState(null, "", REDIRECT_PATH); // the code is spent: keep it out of the address bar
  return token;
}
