"""The web dashboard's assets (`static/`), served at `/ui` by `tasques.api.routes_ui`."""
