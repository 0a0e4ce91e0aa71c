// core/tls.h for a build without TLS (meson -Dtls=disabled): no OpenSSL is linked. A TLS
// listener is refused when it is added (server.cpp asks tls_supported), so no connection
// ever reaches the transport below; its operations fail rather than pretend.
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "core/tls.h"

bool tls_supported(void) { return false; }

void tls_init(tls_state *t) { memset(t, 0, sizeof *t); }

void tls_free(tls_state *t) { memset(t, 0, sizeof *t); }

int tls_add_cert(tls_state *, const char *cert_file, const char *) {
    log_error("certificate %s: this build has no TLS support (built with -Dtls=disabled)", cert_file ? cert_file : "(null)");
    return WSR_EINVAL;
}

// Nothing was loaded, so nothing changes.
int tls_reload(tls_state *) { return WSR_OK; }

bool tls_conn_start(wsr_server *, conn *) { return false; }

bool tls_conn_ready(const wsr_server *, const conn *) { return false; }

static ssize_t no_read(wsr_server *, conn *, void *, size_t) { return -ENOTSUP; }
static ssize_t no_writev(wsr_server *, conn *, const struct iovec *, int) { return -ENOTSUP; }
static bool no_shutdown(wsr_server *, conn *) { return true; }
static size_t no_pending(wsr_server *, conn *) { return 0; }

const transport_ops transport_tls = {no_read, no_writev, no_shutdown, no_pending, nullptr, nullptr};
