"""The HTTP edge: routes, request/response schemas, error mapping, OpenAPI and Swagger UI."""
