// The web files of src/web/ (the browser client, the status page), built into the
// binary by src/web/embed.py.
#pragma once

#include <stddef.h>

struct web_asset {
    const char *name;         // base name: "client.js"
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const char *etag;         // quoted, for ETag / If-None-Match
};

// The asset with this base name, or NULL.
const web_asset *web_asset_find(const char *name, size_t len);
