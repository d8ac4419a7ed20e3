/*
 * api.c: the control API server, HTTP/1.1 with JSON bodies on a unix
 * socket (docs/api.md).
 *
 * One request per connection. Bytes from a peer are untrusted: they are
 * buffered up to API_MAX_REQUEST and handed, whole, to api_parse(), a pure
 * function that either needs more, yields a request, or names the HTTP
 * status that refuses it. The handler runs only for a complete request
 * from an allowed peer (SO_PEERCRED: root or vtpmd's own user). Every
 * response carries "Connection: close"; a peer that reads slowly keeps its
 * connection in the poll set until it is written or idle for
 * API_IDLE_TIMEOUT_MS. A malformed request ends that connection only.
 *
 * With API_MAX_CONNECTIONS connections open, a new client takes the place
 * of one that has its answer already (draining) or, failing that, of the
 * one that has waited longest without sending a whole request, which is
 * closed unanswered: clients that connect and stall, however many, cannot
 * keep a well-behaved client (which sends its request at once) from being
 * served. Requests being answered are never dropped; when every slot holds
 * one, the listener leaves the poll set and further clients wait in the
 * kernel's backlog until a slot frees up.
 *
 * A handler that cannot answer at once (its answer waits for a worker or
 * a CA) returns api_deferred(): the connection then waits, out of the poll
 * set and without an idle deadline (the operation's own deadline bounds
 * it), until the caller answers it with api_answer() and the request's
 * ticket. Meanwhile the server serves everyone else. Waiting connections
 * do not count among the API_MAX_CONNECTIONS: up to API_MAX_DEFERRED of
 * them wait beside those, so that operations in flight (one per instance
 * at most) cannot shut the API.
 *
 * On TCP the server may speak TLS (vtpm-ca's HTTPS, tls.c): every
 * connection is then a TLS connection whose handshake runs as its first
 * bytes are read, under the same idle deadline; a handshake that fails
 * (a client offering less than TLS 1.3, one that does not trust the
 * certificate) ends that connection only. Reads and writes go through
 * api_conn_recv and api_conn_send, which hide which it is.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>
#include <jansson.h>

#include "common.h"

#define API_MAX_HEAD          8192 /* request line and headers */
#define API_URL_MAX           1024 /* request target, before decoding */
#define API_LINGER_MS         1000 /* draining a refused request after the answer */
#define API_ACCEPT_BACKOFF_MS 100  /* after EMFILE and friends */
#define API_BACKLOG           64
#define API_INITIAL_CAP       4096
#define API_SLOTS             (API_MAX_CONNECTIONS + API_MAX_DEFERRED)

/* The state of one api_parse() run over a buffer. */
struct api_parser {
	http_parser hp;
	const uint8_t *buf;
	size_t len;
	char url[API_URL_MAX];
	size_t url_len;
	char field[24]; /* current header name, lowercased, truncated */
	size_t field_len;
	bool in_value; /* the last header callback was a value */
	bool te;       /* a Transfer-Encoding header was seen */
	size_t instance_len; /* bytes of X-Vtpmd-Instance seen, kept up to the limit */
	bool head_done, done;
	size_t body_off, body_len;
	bool body_seen;
	struct api_request *req;
	int status; /* set by a callback that refuses the request */
	char why[160];
};

enum api_conn_state {
	API_CONN_FREE,
	API_CONN_READING,
	API_CONN_WAITING, /* for api_answer() */
	API_CONN_WRITING,
	API_CONN_DRAINING,
};

struct api_conn {
	enum api_conn_state state;
	int fd;
	uid_t uid;
	pid_t pid;
	bool allowed; /* peer credentials passed */
	char addr[API_PEER_ADDR_MAX]; /* TCP: the peer's numeric address */
	uint8_t *in;  /* request bytes so far */
	size_t in_len, in_cap;
	size_t need;   /* parse again once in_len reaches this */
	bool complete; /* the request was read whole (no draining needed) */
	char *out;     /* the serialised response */
	size_t out_len, out_off;
	size_t drained;
	int64_t deadline; /* monotonic ms */
	uint64_t round;	  /* the api_accept() call that accepted it */
	uint64_t ticket;  /* this connection's number, never 0 (api_request.ticket) */
	enum api_method method; /* API_CONN_WAITING: what it asked, for the log */
	char path[64];
	struct tls_conn *tls; /* on a TLS server */
	short tls_wants;      /* POLLIN or POLLOUT: what TLS waits for besides */
};

struct api_server {
	int fd;
	bool tcp; /* a network service: no peer credentials to check */
	struct tls_server *tls; /* HTTPS (tcp only), or NULL; not owned */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev; /* of the socket file we bound, to unlink only ours */
	ino_t ino;
	api_handler handler;
	void *ctx;
	int nconns;   /* connections being read, answered or drained */
	int nwaiting; /* connections waiting for api_answer() */
	int64_t accept_resume; /* listener paused until then after EMFILE */
	uint64_t round;	       /* api_accept() calls so far */
	uint64_t tickets;      /* connections accepted so far */
	int64_t evict_logged;  /* when closing a stalled client was last logged */
	struct api_conn conns[API_SLOTS];
};

/* --- parsing (pure: no I/O, no globals) --------------------------------- */

static int api_refuse(struct api_parser *p, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records why the request is refused; returns -1 so that a callback can
 * return it and stop http-parser. */
static int
api_refuse(struct api_parser *p, int status, const char *fmt, ...)
{
	va_list ap;

	if (p->status != 0)
		return -1;
	p->status = status;
	va_start(ap, fmt);
	vsnprintf(p->why, sizeof(p->why), fmt, ap);
	va_end(ap);
	return -1;
}

static int
api_on_url(http_parser *hp, const char *at, size_t len)
{
	struct api_parser *p = hp->data;

	if (len >= sizeof(p->url) - p->url_len)
		return api_refuse(
		    p, 414, "request target longer than %zu bytes", sizeof(p->url) - 1);
	memcpy(p->url + p->url_len, at, len);
	p->url_len += len;
	p->url[p->url_len] = '\0';
	return 0;
}

static int
api_on_header_field(http_parser *hp, const char *at, size_t len)
{
	struct api_parser *p = hp->data;

	if (p->in_value) {
		p->field_len = 0;
		p->in_value = false;
	}
	for (size_t i = 0; i < len && p->field_len < sizeof(p->field) - 1; i++) {
		char c = at[i];
		p->field[p->field_len++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	p->field[p->field_len] = '\0';
	return 0;
}

static int
api_on_header_value(http_parser *hp, const char *at, size_t len)
{
	struct api_parser *p = hp->data;

	if (!p->in_value && strcmp(p->field, "transfer-encoding") == 0)
		p->te = true;
	if (strcmp(p->field, "x-vtpmd-instance") == 0) {
		for (size_t i = 0; i < len; i++, p->instance_len++)
			if (p->instance_len < API_INSTANCE_MAX)
				p->req->instance[p->instance_len] = at[i];
	}
	p->in_value = true;
	return 0;
}

/* The X-Vtpmd-Instance header, if any, is an instance name: 1-64
 * characters of [A-Za-z0-9._-], not starting with '.' or '-'. */
static int
api_check_instance(struct api_parser *p)
{
	const char *s = p->req->instance;

	if (p->instance_len > API_INSTANCE_MAX)
		return api_refuse(
		    p, 400, "X-Vtpmd-Instance: longer than %d characters", API_INSTANCE_MAX);
	p->req->instance[p->instance_len] = '\0';
	if (s[0] == '.' || s[0] == '-')
		return api_refuse(p, 400, "X-Vtpmd-Instance: not an instance name");
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		        (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return api_refuse(p, 400, "X-Vtpmd-Instance: not an instance name");
	return 0;
}

static int
api_unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes the path of the request target into req->path. Refuses what
 * could reach a file or confuse a router: %00 and bad escapes, an encoded
 * '/', control characters, spaces and non-ASCII bytes, "." and ".."
 * segments. */
static int
api_decode_path(struct api_parser *p, const char *in, size_t len)
{
	char *out = p->req->path, *seg;
	size_t n = 0;

	if (len == 0 || in[0] != '/')
		return api_refuse(p, 400, "request target must be a path starting with '/'");
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)in[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= len)
				return api_refuse(p, 400, "truncated %%-escape in path");
			hi = api_unhex(in[i + 1]);
			lo = api_unhex(in[i + 2]);
			if (hi < 0 || lo < 0)
				return api_refuse(p, 400, "bad %%-escape in path");
			c = hi << 4 | lo;
			i += 2;
			if (c == 0)
				return api_refuse(p, 400, "%%00 in path");
			if (c == '/')
				return api_refuse(p, 400, "encoded '/' in path");
		}
		if (c <= 0x20 || c >= 0x7f)
			return api_refuse(
			    p, 400, "path contains a control character, space or non-ASCII byte");
		if (n + 1 >= sizeof(p->req->path))
			return api_refuse(
			    p, 414, "path longer than %zu bytes", sizeof(p->req->path) - 1);
		out[n++] = (char)c;
	}
	out[n] = '\0';
	for (seg = out; seg != NULL; seg = strchr(seg + 1, '/')) {
		const char *s = seg + 1;
		if (strncmp(s, "..", 2) == 0 && (s[2] == '/' || s[2] == '\0'))
			return api_refuse(p, 400, "'..' in path");
		if (s[0] == '.' && (s[1] == '/' || s[1] == '\0'))
			return api_refuse(p, 400, "'.' segment in path");
	}
	return 0;
}

static int
api_copy_query(struct api_parser *p, const char *in, size_t len)
{
	if (len >= sizeof(p->req->query))
		return api_refuse(p, 414, "query longer than %zu bytes", sizeof(p->req->query) - 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c <= 0x20 || c >= 0x7f)
			return api_refuse(
			    p, 400, "query contains a control character, space or non-ASCII byte");
	}
	memcpy(p->req->query, in, len);
	p->req->query[len] = '\0';
	return 0;
}

/* Splits the request target into path and query (a fragment is ignored). */
static int
api_parse_target(struct api_parser *p)
{
	struct http_parser_url u;

	if (p->url_len == 0 || p->url[0] != '/')
		return api_refuse(p, 400, "request target must be a path starting with '/'");
	http_parser_url_init(&u);
	if (http_parser_parse_url(p->url, p->url_len, 0, &u) != 0 ||
	    !(u.field_set & (1 << UF_PATH)))
		return api_refuse(p, 400, "malformed request target");
	if (api_decode_path(p, p->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len) == -1)
		return -1;
	if (u.field_set & (1 << UF_QUERY))
		return api_copy_query(
		    p, p->url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
	return 0;
}

/* http-parser, built lenient, accepts "HXTP/1.1": the request line must end
 * in exactly "HTTP/<digit>.<digit>". */
static int
api_check_version(struct api_parser *p)
{
	const char *s = (const char *)p->buf, *end = s + p->len, *eol;
	size_t n;

	while (s < end && (*s == '\r' || *s == '\n'))
		s++; /* empty lines before a request are allowed */
	eol = memchr(s, '\n', (size_t)(end - s));
	if (eol == NULL)
		return api_refuse(p, 400, "malformed request line");
	n = (size_t)(eol - s);
	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (n < 9 || memcmp(s + n - 9, " HTTP/", 6) != 0 || s[n - 3] < '0' || s[n - 3] > '9' ||
	    s[n - 2] != '.' || s[n - 1] < '0' || s[n - 1] > '9')
		return api_refuse(p, 400, "malformed HTTP version in the request line");
	return 0;
}

static int
api_on_headers_complete(http_parser *hp)
{
	struct api_parser *p = hp->data;

	p->head_done = true;
	if (api_check_version(p) == -1 || api_check_instance(p) == -1)
		return -1;
	if (hp->http_major != 1)
		return api_refuse(
		    p, 505, "HTTP/%u.%u is not supported", hp->http_major, hp->http_minor);
	if (p->te || (hp->flags & F_CHUNKED))
		return api_refuse(
		    p, 411, "Transfer-Encoding is not supported; a body needs Content-Length");
	if ((hp->flags & F_CONTENTLENGTH) && hp->content_length > API_MAX_REQUEST)
		return api_refuse(p, 413, "Content-Length %llu is above the %u-byte limit",
		    (unsigned long long)hp->content_length, API_MAX_REQUEST);
	switch (hp->method) {
	case HTTP_GET: p->req->method = API_GET; break;
	case HTTP_POST: p->req->method = API_POST; break;
	case HTTP_DELETE: p->req->method = API_DELETE; break;
	default: p->req->method = API_OTHER; break;
	}
	return api_parse_target(p);
}

static int
api_on_body(http_parser *hp, const char *at, size_t len)
{
	struct api_parser *p = hp->data;

	if (!p->body_seen) {
		p->body_seen = true;
		p->body_off = (size_t)((const uint8_t *)at - p->buf);
	}
	p->body_len += len;
	return 0;
}

/* Stops the parser at the end of the first message: one request per
 * connection, so anything after it is the caller's to judge. */
static int
api_on_message_complete(http_parser *hp)
{
	struct api_parser *p = hp->data;

	p->done = true;
	http_parser_pause(hp, 1);
	return 0;
}

static const http_parser_settings api_settings = {
    .on_url = api_on_url,
    .on_header_field = api_on_header_field,
    .on_header_value = api_on_header_value,
    .on_headers_complete = api_on_headers_complete,
    .on_body = api_on_body,
    .on_message_complete = api_on_message_complete,
};

/* Runs http-parser over buf[off, off+len); returns the bytes it consumed,
 * or -1 when the request is refused (p->status says why). */
static ssize_t
api_execute(struct api_parser *p, size_t off, size_t len)
{
	enum http_errno e;
	size_t n;

	n = http_parser_execute(&p->hp, &api_settings, (const char *)p->buf + off, len);
	e = HTTP_PARSER_ERRNO(&p->hp);
	if (e == HPE_OK || (e == HPE_PAUSED && p->done))
		return (ssize_t)n;
	if (p->status == 0) {
		if (e == HPE_HEADER_OVERFLOW)
			api_refuse(p, 431, "request headers too large");
		else
			api_refuse(p, 400, "malformed request: %s", http_errno_description(e));
	}
	return -1;
}

/* Parses the JSON body, which must be an object. */
static int
api_parse_body(struct api_parser *p)
{
	json_error_t err;
	json_t *v;

	if (p->body_len == 0)
		return 0;
	v = json_loadb((const char *)p->buf + p->body_off, p->body_len,
	    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
	if (v == NULL)
		return api_refuse(p, 400, "body is not valid JSON: %s (line %d, column %d)",
		    err.text, err.line, err.column);
	if (!json_is_object(v)) {
		json_decref(v);
		return api_refuse(p, 400, "body must be a JSON object");
	}
	p->req->body = (struct json_t *)v;
	return 0;
}

/*
 * Parses the request at the start of buf[0, len), the bytes received so
 * far on one connection. Pure: the same bytes always give the same result.
 *
 * *req is overwritten (a previous body is not freed: clear it first).
 * Returns API_PARSE_COMPLETE with *req filled (the caller frees it with
 * api_request_clear); API_PARSE_INCOMPLETE when more bytes are needed
 * (req->need says how many the buffer must hold before the result can
 * change); or API_PARSE_ERROR with the HTTP status that refuses the
 * request in *status and a reason in why. In the last two cases *req holds
 * nothing to free. peer_uid and peer_pid are left for the server to fill.
 */
enum api_parse
api_parse(
    const uint8_t *buf, size_t len, struct api_request *req, int *status, struct err *err)
{
	struct api_parser *p;
	enum api_parse ret = API_PARSE_ERROR;
	size_t first, used;
	ssize_t n;

	memset(req, 0, sizeof(*req));
	req->peer_uid = (uid_t)-1;
	*status = 0;
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		*status = 500;
		err_set(err, ERR_FAILED, "out of memory");
		return API_PARSE_ERROR;
	}
	p->buf = buf;
	p->len = len;
	p->req = req;
	http_parser_init(&p->hp, HTTP_REQUEST);
	p->hp.data = p;

	/* The head must end within API_MAX_HEAD bytes: parse those first. */
	first = len < API_MAX_HEAD ? len : API_MAX_HEAD;
	if ((n = api_execute(p, 0, first)) == -1)
		goto out;
	used = (size_t)n;
	if (!p->head_done) {
		if (len > API_MAX_HEAD) {
			api_refuse(
			    p, 431, "request line and headers exceed %u bytes", API_MAX_HEAD);
			goto out;
		}
		req->need = len + 1;
		ret = API_PARSE_INCOMPLETE;
		goto out;
	}
	if (!p->done && len > first) {
		if ((n = api_execute(p, first, len - first)) == -1)
			goto out;
		used = first + (size_t)n;
	}
	if (!p->done) {
		/* Every byte so far was consumed; content_length counts down
		 * to the end of the body. */
		if (len >= API_MAX_REQUEST || p->hp.content_length > API_MAX_REQUEST - len) {
			api_refuse(p, 413, "request larger than %u bytes", API_MAX_REQUEST);
			goto out;
		}
		req->need = len + (size_t)p->hp.content_length;
		ret = API_PARSE_INCOMPLETE;
		goto out;
	}
	if (len > API_MAX_REQUEST) {
		api_refuse(p, 413, "request larger than %u bytes", API_MAX_REQUEST);
		goto out;
	}
	if (used < len) {
		if (!(p->hp.flags & F_CONTENTLENGTH))
			api_refuse(p, 411, "data after the headers without Content-Length");
		else
			api_refuse(p, 400, "data after the request (one request per connection)");
		goto out;
	}
	if (api_parse_body(p) == -1)
		goto out;
	req->need = used;
	ret = API_PARSE_COMPLETE;
out:
	if (ret == API_PARSE_ERROR) {
		*status = p->status != 0 ? p->status : 400;
		err_set(err, ERR_INVALID, "%s", p->why);
		api_request_clear(req);
	}
	free(p);
	return ret;
}

/* Frees what api_parse() put in *req and zeroes it. NULL-safe. */
void
api_request_clear(struct api_request *req)
{
	if (req == NULL)
		return;
	json_decref((json_t *)req->body);
	memset(req, 0, sizeof(*req));
	req->peer_uid = (uid_t)-1;
}

/* An error response {"error": error, "hint": hint}; hint may be NULL (then
 * omitted). The body is NULL only when memory ran out; the server answers
 * a plain 500 then. */
struct api_response
api_error(int status, const char *error, const char *hint)
{
	struct api_response r = {.status = status};

	if (hint != NULL)
		r.body = (struct json_t *)json_pack("{s:s, s:s}", "error", error, "hint", hint);
	else
		r.body = (struct json_t *)json_pack("{s:s}", "error", error);
	return r;
}

/* --- responses ------------------------------------------------------------ */

static const char *
api_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 422: return "Unprocessable Content";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
	}
}

/* What a client should do about a request api_parse() refused. */
static const char *
api_parse_hint(int status)
{
	switch (status) {
	case 411: return "send the body with a Content-Length header (no chunked encoding)";
	case 413: return "keep requests under 64 KiB";
	case 414: return "use the paths in docs/api.md";
	case 431: return "keep the request line and headers under 8 KiB";
	case 505: return "send HTTP/1.1 requests";
	default: return "send one HTTP/1.1 request; a body must be a JSON object (docs/api.md)";
	}
}

/* Serialises a 200 answer of raw bytes (consuming them). */
static char *
api_serialise_raw(struct api_response r, size_t *len)
{
	char *out = NULL;
	int n;

	n = asprintf(&out,
	    "HTTP/1.1 200 OK\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Connection: close\r\n"
	    "\r\n",
	    r.raw_type, r.raw_len);
	if (n >= 0) {
		char *grown = realloc(out, (size_t)n + r.raw_len);

		if (grown == NULL) {
			free(out);
			out = NULL;
		} else {
			out = grown;
			memcpy(out + n, r.raw, r.raw_len);
			*len = (size_t)n + r.raw_len;
		}
	}
	free(r.raw);
	return n < 0 ? NULL : out;
}

/*
 * Serialises r (consuming its body) into a malloc'd HTTP/1.1 response.
 * Returns NULL only when memory ran out.
 */
static char *
api_serialise(struct api_response r, size_t *len)
{
	static const char oom[] = "{\"error\":\"out of memory\",\"hint\":\"retry later\"}";
	char *body = NULL, *out = NULL;
	size_t blen;
	int n;

	if (r.raw != NULL && r.status == 200 && r.raw_type != NULL && r.body == NULL)
		return api_serialise_raw(r, len);
	free(r.raw);
	if (r.status < 100 || r.status > 599) {
		log_warnx("api: handler returned status %d", r.status);
		json_decref((json_t *)r.body);
		r = api_error(500, "internal error: bad status", "report this as a bug");
	}
	if (r.body == NULL)
		log_warnx("api: response without a body (status %d)", r.status);
	else
		body = json_dumps((json_t *)r.body, JSON_COMPACT);
	json_decref((json_t *)r.body);
	if (body == NULL) {
		r.status = 500;
		if ((body = strdup(oom)) == NULL)
			return NULL;
	}
	blen = strlen(body);
	n = asprintf(&out,
	    "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n"
	    "Connection: close\r\n"
	    "\r\n"
	    "%s\n",
	    r.status, api_reason(r.status), blen + 1, body);
	free(body);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return out;
}

/* --- connections -------------------------------------------------------- */

/* What a TLS call's outcome means as recv/send would say it: n bytes, 0
 * at the end of the stream, -1 with errno (EAGAIN, with c->tls_wants set
 * when TLS waits for the other direction; EPROTO when TLS failed). */
static ssize_t
api_tls_result(struct api_conn *c, enum tls_io io, size_t n, short own, const struct err *err)
{
	c->tls_wants = 0;
	switch (io) {
	case TLS_IO_OK: return (ssize_t)n;
	case TLS_IO_EOF: return 0;
	case TLS_IO_WANT_READ:
	case TLS_IO_WANT_WRITE:
		if ((io == TLS_IO_WANT_READ ? POLLIN : POLLOUT) != own)
			c->tls_wants = io == TLS_IO_WANT_READ ? POLLIN : POLLOUT;
		errno = EAGAIN;
		return -1;
	case TLS_IO_ERROR: break;
	}
	log_debug("api: fd %d: %s", c->fd, err->msg);
	errno = EPROTO;
	return -1;
}

/* recv() of a connection's bytes, through TLS on a TLS server. */
static ssize_t
api_conn_recv(struct api_conn *c, void *buf, size_t len)
{
	struct err err = {0};
	enum tls_io io;
	size_t n;

	if (c->tls == NULL)
		return recv(c->fd, buf, len, MSG_DONTWAIT);
	io = tls_read(c->tls, buf, len, &n, &err);
	return api_tls_result(c, io, n, POLLIN, &err);
}

/* send() of a connection's bytes, through TLS on a TLS server. */
static ssize_t
api_conn_send(struct api_conn *c, const void *buf, size_t len)
{
	struct err err = {0};
	enum tls_io io;
	size_t n;

	if (c->tls == NULL)
		return send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	io = tls_write(c->tls, buf, len, &n, &err);
	return api_tls_result(c, io, n, POLLOUT, &err);
}

static void
api_conn_close(struct api_server *srv, struct api_conn *c)
{
	if (c->state == API_CONN_FREE)
		return;
	if (c->state == API_CONN_WAITING)
		srv->nwaiting--;
	else
		srv->nconns--;
	tls_conn_free(c->tls);
	close(c->fd);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->state = API_CONN_FREE;
}

/* Sends what is left of the response. Once it is out, closes a connection
 * whose request was read whole, or drains (and discards) what the peer
 * still sends so that it reads the answer instead of a reset. */
static void
api_conn_write(struct api_server *srv, struct api_conn *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = api_conn_send(c, c->out + c->out_off, c->out_len - c->out_off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			log_debug("api: fd %d: write: %s", c->fd, strerror(errno));
			api_conn_close(srv, c);
			return;
		}
		c->out_off += (size_t)n;
		c->deadline = mono_ms() + API_IDLE_TIMEOUT_MS;
	}
	if (c->complete) {
		api_conn_close(srv, c);
		return;
	}
	tls_conn_close_notify(c->tls);
	shutdown(c->fd, SHUT_WR);
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_cap = 0;
	c->state = API_CONN_DRAINING;
	c->deadline = mono_ms() + API_LINGER_MS;
}

static void
api_conn_respond(struct api_server *srv, struct api_conn *c, struct api_response r)
{
	c->out = api_serialise(r, &c->out_len);
	if (c->out == NULL) {
		log_warnx("api: out of memory for a response");
		api_conn_close(srv, c);
		return;
	}
	c->out_off = 0;
	c->state = API_CONN_WRITING;
	c->deadline = mono_ms() + API_IDLE_TIMEOUT_MS;
	api_conn_write(srv, c);
}

static const char *
api_method_name(enum api_method method)
{
	switch (method) {
	case API_GET: return "GET";
	case API_POST: return "POST";
	case API_DELETE: return "DELETE";
	case API_OTHER: break;
	}
	return "other";
}

/* The debug log line of a request's answer (status 0: deferred). */
static void
api_log(const struct api_conn *c, enum api_method method, const char *path, int status)
{
	if (status == 0)
		log_debug("api: uid %u: %s %s -> answered later", (unsigned)c->uid,
		    api_method_name(method), path);
	else
		log_debug("api: uid %u: %s %s -> %d", (unsigned)c->uid, api_method_name(method),
		    path, status);
}

static struct api_response
api_forbidden(const struct api_conn *c)
{
	log_warnx("api: refused a request from uid %u (pid %d)", (unsigned)c->uid, (int)c->pid);
	return api_error(403, "caller not allowed", "run as root or as the user vtpmd runs as");
}

/* Parses what has arrived; answers when the request is whole, refused,
 * or cut short by the peer (eof). */
static void
api_conn_parse(struct api_server *srv, struct api_conn *c, bool eof)
{
	struct api_request req;
	struct api_response r;
	enum api_parse res;
	struct err err;
	int status;

	if (c->in_len == 0 && eof) {
		api_conn_close(srv, c);
		return;
	}
	if (!eof && c->in_len < c->need)
		return;
	res = api_parse(c->in, c->in_len, &req, &status, &err);
	if (res == API_PARSE_INCOMPLETE && !eof) {
		c->need = req.need;
		return;
	}
	c->complete = res == API_PARSE_COMPLETE;
	if (!c->allowed) {
		r = api_forbidden(c);
	} else if (res == API_PARSE_COMPLETE) {
		req.peer_uid = c->uid;
		req.peer_pid = c->pid;
		memcpy(req.peer_addr, c->addr, sizeof(req.peer_addr));
		req.ticket = c->ticket;
		r = srv->handler(srv->ctx, &req);
		api_log(c, req.method, req.path, r.status);
		if (r.status == 0 && r.body == NULL && r.raw == NULL) {
			c->state = API_CONN_WAITING;
			srv->nconns--;
			srv->nwaiting++;
			c->method = req.method;
			snprintf(c->path, sizeof(c->path), "%s", req.path);
			api_request_clear(&req);
			return;
		}
	} else if (res == API_PARSE_INCOMPLETE) {
		r = api_error(400, "request ended before it was complete",
		    "send the whole request, with Content-Length for a body");
	} else {
		log_debug("api: uid %u: refused (%d): %s", (unsigned)c->uid, status, err.msg);
		r = api_error(status, err.msg, api_parse_hint(status));
	}
	api_request_clear(&req);
	api_conn_respond(srv, c, r);
}

static void
api_conn_read(struct api_server *srv, struct api_conn *c)
{
	bool eof = false;
	ssize_t n;

	for (;;) {
		if (c->in_len == c->in_cap) {
			size_t cap = c->in_cap ? c->in_cap * 2 : API_INITIAL_CAP;
			uint8_t *p;
			/* One byte over the limit is enough for api_parse to refuse. */
			if (cap > API_MAX_REQUEST + 1)
				cap = API_MAX_REQUEST + 1;
			if (cap == c->in_cap)
				break;
			p = realloc(c->in, cap);
			if (p == NULL) {
				log_warnx("api: out of memory for a request");
				api_conn_close(srv, c);
				return;
			}
			c->in = p;
			c->in_cap = cap;
		}
		n = api_conn_recv(c, c->in + c->in_len, c->in_cap - c->in_len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n == -1) {
			log_debug("api: fd %d: read: %s", c->fd, strerror(errno));
			api_conn_close(srv, c);
			return;
		}
		if (n == 0) {
			eof = true;
			break;
		}
		c->in_len += (size_t)n;
		c->deadline = mono_ms() + API_IDLE_TIMEOUT_MS;
	}
	api_conn_parse(srv, c, eof);
}

/* Reads and discards until the peer closes, the linger time ends, or it
 * has sent more than any request may hold. */
static void
api_conn_drain(struct api_server *srv, struct api_conn *c)
{
	uint8_t scratch[4096];
	ssize_t n;

	for (;;) {
		n = recv(c->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0 || (c->drained += (size_t)n) > API_MAX_REQUEST) {
			api_conn_close(srv, c);
			return;
		}
	}
}

/*
 * The connection a new client may replace when every slot is taken: one
 * draining after its answer, else the one reading a request that has been
 * silent longest (the earliest deadline). Connections accepted by the
 * current api_accept() call (round) have not been read yet and are spared,
 * so one burst of clients cannot push out a request that arrived with it.
 * NULL when every connection is answering.
 */
static struct api_conn *
api_conn_victim(struct api_server *srv, uint64_t round)
{
	struct api_conn *victim = NULL;

	for (int i = 0; i < API_SLOTS; i++) {
		struct api_conn *c = &srv->conns[i];
		if (c->round == round)
			continue;
		if (c->state == API_CONN_DRAINING)
			return c;
		if (c->state == API_CONN_READING &&
		    (victim == NULL || c->deadline < victim->deadline))
			victim = c;
	}
	return victim;
}

/* Whether a new client may come in (accepted in round): there is a free
 * slot and fewer than API_MAX_CONNECTIONS are being read or answered, or
 * a connection it may replace. */
static bool
api_may_accept(struct api_server *srv, uint64_t round)
{
	if (srv->nconns < API_MAX_CONNECTIONS && srv->nconns + srv->nwaiting < API_SLOTS)
		return true;
	return api_conn_victim(srv, round) != NULL;
}

/* Closes victim to make room for a new client. */
static void
api_conn_evict(struct api_server *srv, struct api_conn *victim)
{
	int64_t now;

	if (victim->state == API_CONN_READING) {
		now = mono_ms();
		if (srv->evict_logged == 0 || now - srv->evict_logged >= API_IDLE_TIMEOUT_MS) {
			log_warnx("api: all %d connections in use; closing those that stall "
				  "longest to serve new clients (uid %u, pid %d first)",
			    API_MAX_CONNECTIONS, (unsigned)victim->uid, (int)victim->pid);
			srv->evict_logged = now;
		}
	}
	api_conn_close(srv, victim);
}

/* A TCP peer's numeric address ("" when it is of another family). */
static void
api_peer_addr(const struct sockaddr_storage *ss, char out[static API_PEER_ADDR_MAX])
{
	const void *a = NULL;

	out[0] = '\0';
	if (ss->ss_family == AF_INET)
		a = &((const struct sockaddr_in *)ss)->sin_addr;
	else if (ss->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	if (a == NULL || inet_ntop(ss->ss_family, a, out, API_PEER_ADDR_MAX) == NULL)
		out[0] = '\0';
}

/* A TLS connection on c's socket, for a TLS server. */
static int
api_conn_tls(struct api_server *srv, struct api_conn *c)
{
	struct err err = {0};

	if ((c->tls = tls_accept(srv->tls, c->fd, &err)) == NULL) {
		log_warnx("api: %s", err.msg);
		return -1;
	}
	return 0;
}

static void
api_accept(struct api_server *srv)
{
	struct api_conn *c = NULL;
	struct sockaddr_storage ss;
	struct ucred cred;
	socklen_t sl = sizeof(cred), al;
	uid_t self = geteuid();
	int fd;

	srv->round++;
	while (api_may_accept(srv, srv->round)) {
		al = sizeof(ss);
		memset(&ss, 0, sizeof(ss));
		fd = accept4(srv->fd, (struct sockaddr *)&ss, &al, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_warn("api: accept");
				srv->accept_resume = mono_ms() + API_ACCEPT_BACKOFF_MS;
			}
			return;
		}
		if (srv->nconns >= API_MAX_CONNECTIONS || srv->nconns + srv->nwaiting >= API_SLOTS)
			api_conn_evict(srv, api_conn_victim(srv, srv->round));
		c = NULL;
		for (int i = 0; i < API_SLOTS; i++) {
			if (srv->conns[i].state == API_CONN_FREE) {
				c = &srv->conns[i];
				break;
			}
		}
		if (c == NULL) { /* cannot happen: nconns and nwaiting count the used slots */
			close(fd);
			return;
		}
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->round = srv->round;
		c->ticket = ++srv->tickets;
		c->state = API_CONN_READING;
		c->deadline = mono_ms() + API_IDLE_TIMEOUT_MS;
		sl = sizeof(cred);
		if (srv->tcp) {
			/* Requests are judged by their cryptographic content. */
			c->uid = (uid_t)-1;
			c->allowed = true;
			api_peer_addr(&ss, c->addr);
			if (srv->tls != NULL && api_conn_tls(srv, c) == -1) {
				close(fd);
				c->state = API_CONN_FREE;
				c->fd = -1;
				continue;
			}
		} else if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) == 0 &&
		    sl == sizeof(cred)) {
			c->uid = cred.uid;
			c->pid = cred.pid;
			c->allowed = cred.uid == 0 || cred.uid == self;
		} else {
			log_warn("api: SO_PEERCRED");
			c->uid = (uid_t)-1;
			c->allowed = false;
		}
		srv->nconns++;
	}
}

/* --- the server ----------------------------------------------------------- */

/* Creates path's parent directory (mode 0700) when it does not exist. */
static int
api_make_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *d;

	snprintf(dir, sizeof(dir), "%s", path);
	d = dirname(dir);
	if (mkdir(d, 0700) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

/* Whether a server accepts on the socket at path: a live one must not be
 * replaced. A full backlog (EAGAIN) counts as live. */
static bool
api_socket_live(const struct sockaddr_un *sun)
{
	int fd, r;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return false;
	r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	if (r == -1 && errno != EAGAIN && errno != EINPROGRESS) {
		close(fd);
		return false;
	}
	close(fd);
	return true;
}

/*
 * Listens on the unix socket at path (mode 0600; the parent directory is
 * created 0700 when missing) and serves requests with handler(ctx, req).
 * A stale socket file is replaced; one a live server accepts on is not
 * (errno EADDRINUSE), nor a file that is not a socket (EEXIST). Returns
 * NULL with errno on failure. The caller polls via api_pollfds(),
 * api_process() and api_next_timeout(), and frees with api_close().
 */
struct api_server *
api_listen(const char *path, api_handler handler, void *ctx)
{
	struct api_server *srv = NULL;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t old_mask;
	int fd = -1, r, saved;

	if (strlen(path) >= sizeof(sun.sun_path) || path[0] == '\0') {
		errno = ENAMETOOLONG;
		return NULL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (api_make_parent(path) == -1)
		return NULL;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			errno = EEXIST;
			return NULL;
		}
		if (api_socket_live(&sun)) {
			errno = EADDRINUSE;
			return NULL;
		}
		if (unlink(path) == -1 && errno != ENOENT)
			return NULL;
	} else if (errno != ENOENT) {
		return NULL;
	}
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return NULL;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	/* Never visible with a wider mode, not even between bind and chmod. */
	old_mask = umask(0177);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old_mask);
	if (r == -1 || chmod(path, 0600) == -1 || listen(fd, API_BACKLOG) == -1 ||
	    stat(path, &st) == -1)
		goto fail;
	srv->fd = fd;
	memcpy(srv->path, path, strlen(path) + 1);
	srv->dev = st.st_dev;
	srv->ino = st.st_ino;
	srv->handler = handler;
	srv->ctx = ctx;
	for (int i = 0; i < API_SLOTS; i++)
		srv->conns[i].fd = -1;
	return srv;
fail:
	saved = errno;
	if (fd != -1) {
		close(fd);
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(path);
	}
	free(srv);
	errno = saved;
	return NULL;
}

/*
 * Serves requests with handler(ctx, req) on fd, a TCP socket already
 * listening (vtpm-ca's network child gets it from its parent): every peer
 * may call, so the handler must judge each request on its content. With
 * tls (not NULL), every connection speaks TLS (HTTPS); tls stays the
 * caller's, and must outlive the server. The server owns fd from then on
 * (api_close closes it), also when this fails. Returns NULL with errno on
 * failure.
 */
struct api_server *
api_serve_tcp(int fd, struct tls_server *tls, api_handler handler, void *ctx)
{
	struct api_server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL) {
		close(fd);
		return NULL;
	}
	srv->fd = fd;
	srv->tcp = true;
	srv->tls = tls;
	srv->handler = handler;
	srv->ctx = ctx;
	for (int i = 0; i < API_SLOTS; i++)
		srv->conns[i].fd = -1;
	return srv;
}

/* Closes every connection and the listener, and removes the socket file
 * if it is still the one api_listen() made. NULL-safe. */
void
api_close(struct api_server *srv)
{
	struct stat st;

	if (srv == NULL)
		return;
	for (int i = 0; i < API_SLOTS; i++)
		api_conn_close(srv, &srv->conns[i]);
	if (!srv->tcp && lstat(srv->path, &st) == 0 && st.st_dev == srv->dev &&
	    st.st_ino == srv->ino)
		unlink(srv->path);
	close(srv->fd);
	free(srv);
}

/*
 * Fills fds[0, max) with what the server waits for and returns how many:
 * the listener (unless API_MAX_CONNECTIONS are open and all of them
 * answering, or accept is backing off after running out of descriptors),
 * then every connection but those waiting for api_answer(). With
 * max >= API_MAX_POLLFDS nothing is left out.
 */
int
api_pollfds(struct api_server *srv, struct pollfd *fds, int max)
{
	int n = 0;

	if (n < max && mono_ms() >= srv->accept_resume && api_may_accept(srv, srv->round + 1))
		fds[n++] = (struct pollfd){.fd = srv->fd, .events = POLLIN};
	for (int i = 0; i < API_SLOTS && n < max; i++) {
		const struct api_conn *c = &srv->conns[i];
		switch (c->state) {
		case API_CONN_READING:
			fds[n++] = (struct pollfd){.fd = c->fd, .events = POLLIN | c->tls_wants};
			break;
		case API_CONN_DRAINING:
			fds[n++] = (struct pollfd){.fd = c->fd, .events = POLLIN};
			break;
		case API_CONN_WRITING:
			fds[n++] = (struct pollfd){.fd = c->fd, .events = POLLOUT | c->tls_wants};
			break;
		case API_CONN_WAITING:
		case API_CONN_FREE: break;
		}
	}
	return n;
}

static struct api_conn *
api_conn_find(struct api_server *srv, int fd)
{
	for (int i = 0; i < API_SLOTS; i++)
		if (srv->conns[i].state != API_CONN_FREE && srv->conns[i].fd == fd)
			return &srv->conns[i];
	return NULL;
}

/*
 * Acts on the poll results in fds[0, n) (entries the server did not ask
 * for are ignored, so fds may be the caller's whole set), then closes
 * connections past their deadline. Call it after every poll, also when
 * poll timed out. New connections are accepted last, so that a descriptor
 * number reused by accept4 never inherits a stale result.
 */
void
api_process(struct api_server *srv, const struct pollfd *fds, int n)
{
	bool listener_ready = false;
	int64_t now;

	for (int i = 0; i < n; i++) {
		struct api_conn *c;

		if (fds[i].revents == 0)
			continue;
		if (fds[i].fd == srv->fd) {
			listener_ready = true;
			continue;
		}
		c = api_conn_find(srv, fds[i].fd);
		if (c == NULL)
			continue;
		switch (c->state) {
		case API_CONN_READING: api_conn_read(srv, c); break;
		case API_CONN_WRITING: api_conn_write(srv, c); break;
		case API_CONN_DRAINING: api_conn_drain(srv, c); break;
		case API_CONN_WAITING:
		case API_CONN_FREE: break;
		}
	}
	now = mono_ms();
	for (int i = 0; i < API_SLOTS; i++) {
		struct api_conn *c = &srv->conns[i];
		if (c->state != API_CONN_FREE && c->state != API_CONN_WAITING && now >= c->deadline) {
			if (c->state != API_CONN_DRAINING)
				log_debug("api: uid %u: connection idle for %d ms, closed",
				    (unsigned)c->uid, API_IDLE_TIMEOUT_MS);
			api_conn_close(srv, c);
		}
	}
	if (listener_ready)
		api_accept(srv);
}

/* Milliseconds until api_process() has a deadline to enforce, or -1. */
int
api_next_timeout(const struct api_server *srv)
{
	int64_t now = mono_ms(), next = -1;

	if (srv->accept_resume > now)
		next = srv->accept_resume;
	for (int i = 0; i < API_SLOTS; i++) {
		const struct api_conn *c = &srv->conns[i];
		if (c->state != API_CONN_FREE && c->state != API_CONN_WAITING &&
		    (next == -1 || c->deadline < next))
			next = c->deadline;
	}
	if (next == -1)
		return -1;
	return next > now ? (int)(next - now) : 0;
}

/* What a handler returns when it answers later, with api_answer(). */
struct api_response
api_deferred(void)
{
	return (struct api_response){.status = 0, .body = NULL};
}

/*
 * Answers the request whose api_request.ticket is ticket, which its
 * handler deferred; r's body is consumed either way. Returns 0, or -1 when
 * that connection is gone (closed by api_close(), or never deferred).
 */
int
api_answer(struct api_server *srv, uint64_t ticket, struct api_response r)
{
	for (int i = 0; ticket != 0 && i < API_SLOTS; i++) {
		struct api_conn *c = &srv->conns[i];
		if (c->state != API_CONN_WAITING || c->ticket != ticket)
			continue;
		api_log(c, c->method, c->path, r.status);
		srv->nwaiting--;
		srv->nconns++;
		api_conn_respond(srv, c, r);
		return 0;
	}
	json_decref((json_t *)r.body);
	free(r.raw);
	return -1;
}
