// The API reference: Swagger UI over this box's /openapi.json, sending the console's key (if any).
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger",
    deepLinking: true,
    tryItOutEnabled: true,
    displayRequestDuration: true,
    requestInterceptor: (request) => {
      const key = window.lanaiKey ? window.lanaiKey() : null;
      if (key) request.headers.Authorization = "Bearer " + key;
      return request;
    },
  });
});
