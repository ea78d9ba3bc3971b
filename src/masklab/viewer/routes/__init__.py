"""The viewer's routers, one module a resource: datasets, versions (frames, images,
thumbnails, colours), diff, and the static page."""
