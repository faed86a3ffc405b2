// Starts Swagger UI on the document this server serves. A file of its own, not an inline script,
// so the page's Content-Security-Policy can refuse every inline script.
"use strict";
window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // The default asks validator.swagger.io about the document: nothing may leave this server.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
