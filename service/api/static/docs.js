// Swagger UI on the service's own openapi.json. validatorUrl: null keeps the page from asking
// validator.swagger.io for a badge (nothing may leave the service's origin).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
