// headload: a small closed-loop HTTP/1.1 load generator for HEAD requests.
// wrk 4.1 (Debian 12) waits for a body after a HEAD response that carries
// Content-Length, so it cannot measure HEAD; this does, with wrk's result shape.
//
//   headload PORT PATH METHOD ACCEPT CONNECTIONS SECONDS
//
// Talks only to 127.0.0.1. Prints one line: BENCH_JSON {...} like bench/wrk.lua.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_CONNS = 1024, HEAD_MAX = 16384, TIMEOUT_US = 5000000 };

typedef struct {
  int fd;
  int64_t started_us;      // when the outstanding request was sent; 0 if none
  char buf[HEAD_MAX];
  size_t have;             // bytes of the response head read so far
  long long body_left;     // body bytes still to skip (GET only)
  int in_body;
} conn_t;

static struct sockaddr_in target;
static char request[2048];
static size_t request_len;
static int is_head;
static uint32_t *samples;
static size_t nsamples, cap;
static long long n_requests, n_bytes, e_connect, e_read, e_write, e_status, e_timeout;

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void record(int64_t us) {
  if (nsamples == cap) {
    cap = cap ? cap * 2 : 1 << 16;
    samples = realloc(samples, cap * sizeof *samples);
    if (!samples) { perror("realloc"); exit(2); }
  }
  samples[nsamples++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int send_request(conn_t *c) {
  size_t off = 0;
  while (off < request_len) {
    ssize_t n = send(c->fd, request + off, request_len - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;  // a request this small fits an empty socket buffer; anything else is an error
    }
    off += (size_t)n;
  }
  c->started_us = now_us();
  c->have = 0;
  c->in_body = 0;
  return 0;
}

static int open_conn(int ep, conn_t *c) {
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0) return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&target, sizeof target) < 0) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  return send_request(c);
}

static void reopen(int ep, conn_t *c) {
  if (c->fd >= 0) close(c->fd);  // close() also removes it from the epoll set
  c->fd = -1;
  c->started_us = 0;
  if (open_conn(ep, c) < 0) e_connect++;
}

static long long content_length(const char *head) {
  const char *p = head;
  while ((p = strchr(p, '\n')) != NULL) {
    p++;
    if (strncasecmp(p, "content-length:", 15) == 0) return atoll(p + 15);
  }
  return 0;
}

// Returns 1 when a whole response was consumed, 0 when more is needed, -1 on error.
static int consume(conn_t *c, const char *data, size_t n, size_t *used) {
  *used = 0;
  if (c->in_body) {
    size_t take = (long long)n < c->body_left ? n : (size_t)c->body_left;
    c->body_left -= (long long)take;
    *used = take;
    return c->body_left == 0;
  }
  size_t take = n < HEAD_MAX - 1 - c->have ? n : HEAD_MAX - 1 - c->have;
  memcpy(c->buf + c->have, data, take);
  size_t old = c->have;
  c->have += take;
  c->buf[c->have] = 0;
  char *end = strstr(c->buf, "\r\n\r\n");
  if (!end) {
    *used = take;
    return c->have >= HEAD_MAX - 1 ? -1 : 0;
  }
  size_t head_len = (size_t)(end - c->buf) + 4;
  *used = head_len - old;
  int status = atoi(c->buf + 9);
  if (strncmp(c->buf, "HTTP/1.", 7) != 0 || status < 200 || status >= 400) e_status++;
  if (is_head) return 1;
  c->body_left = content_length(c->buf);
  c->in_body = 1;
  return c->body_left == 0;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static uint32_t percentile(double p) {
  if (nsamples == 0) return 0;
  size_t i = (size_t)(p / 100.0 * (double)(nsamples - 1) + 0.5);
  return samples[i];
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: headload PORT PATH METHOD ACCEPT CONNECTIONS SECONDS\n");
    return 2;
  }
  int port = atoi(argv[1]);
  int nconns = atoi(argv[5]);
  int seconds = atoi(argv[6]);
  if (port <= 0 || port > 65535 || nconns <= 0 || nconns > MAX_CONNS || seconds <= 0 || seconds > 600) {
    fprintf(stderr, "headload: bad port, connection count (1..%d) or seconds (1..600)\n", MAX_CONNS);
    return 2;
  }
  is_head = strcmp(argv[3], "HEAD") == 0;
  int len = snprintf(request, sizeof request,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: %s\r\nUser-Agent: pullgate-bench\r\n\r\n",
                     argv[3], argv[2], port, argv[4]);
  if (len <= 0 || (size_t)len >= sizeof request) {
    fprintf(stderr, "headload: request too long\n");
    return 2;
  }
  request_len = (size_t)len;
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)port);
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  int ep = epoll_create1(0);
  static conn_t conns[MAX_CONNS];
  for (int i = 0; i < nconns; i++) {
    conns[i].fd = -1;
    if (open_conn(ep, &conns[i]) < 0) e_connect++;
  }
  int64_t start = now_us(), stop = start + (int64_t)seconds * 1000000;
  static char rbuf[1 << 16];
  struct epoll_event events[MAX_CONNS];
  for (int64_t t = start; t < stop; t = now_us()) {
    int n = epoll_wait(ep, events, MAX_CONNS, 100);
    for (int i = 0; i < n; i++) {
      conn_t *c = events[i].data.ptr;
      ssize_t got = recv(c->fd, rbuf, sizeof rbuf, 0);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got <= 0) {
        e_read++;
        reopen(ep, c);
        continue;
      }
      n_bytes += got;
      size_t off = 0;
      while (off < (size_t)got) {
        size_t used;
        int r = consume(c, rbuf + off, (size_t)got - off, &used);
        off += used;
        if (r < 0) { e_read++; reopen(ep, c); break; }
        if (r == 0) continue;
        n_requests++;
        record(now_us() - c->started_us);
        if (send_request(c) < 0) { e_write++; reopen(ep, c); break; }
      }
    }
    int64_t t_now = now_us();
    for (int i = 0; i < nconns; i++) {
      conn_t *c = &conns[i];
      if (c->fd < 0) reopen(ep, c);
      else if (c->started_us && t_now - c->started_us > TIMEOUT_US) { e_timeout++; reopen(ep, c); }
    }
  }
  int64_t duration = now_us() - start;
  qsort(samples, nsamples, sizeof *samples, cmp_u32);
  double mean = 0;
  for (size_t i = 0; i < nsamples; i++) mean += samples[i];
  mean = nsamples ? mean / (double)nsamples : 0;
  printf("BENCH_JSON {\"requests\":%lld,\"duration_us\":%lld,\"bytes\":%lld,"
         "\"errors\":{\"connect\":%lld,\"read\":%lld,\"write\":%lld,\"status\":%lld,\"timeout\":%lld},"
         "\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,\"max_us\":%u,\"mean_us\":%.1f}\n",
         n_requests, (long long)duration, n_bytes, e_connect, e_read, e_write, e_status, e_timeout,
         percentile(50), percentile(90), percentile(99), nsamples ? samples[nsamples - 1] : 0, mean);
  return 0;
}
