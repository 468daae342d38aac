// fleetlab-switch: the data plane of fleetlab's network fabric (harness/net/fabric.ts), a supervised helper of the
// runner. QEMU's `-netdev dgram` ends talk UDP on 127.0.0.1 to ports of this switch; nothing else is opened. For each
// frame: capture (pcap, nanosecond stamps), learn the sender's MAC, then deliver to the learnt port or flood to the
// sender's neighbours, through the directed link's conditions (up, loss, delay, jitter, rate, duplicate, reorder).
// The runner keeps the model (networks, members, links, addresses) and drives this program over stdin, one command
// a line; a command is applied before any frame read after it arrives (control is read after every batch of frames):
//   net <id> <members> <pcap path>        a network (ids 0, 1, ... in order), its capture file
//   nb <net> <a> <b>                      a and b are neighbours (a link, both directions)
//   stats <path>                          create the counters file (after every net and nb) and answer "ready"
//   port <net> <member> <qemu port>       open the member's switch port; answers "port <net> <member> <port>"
//   set <net> <from> <to> <up> <loss> <delay ms> <jitter ms> <rate kbit> <duplicate> <reorder>
//   window <net> <ms>                     broadcast and multicast frames wait for the end of the current window of ms
//                                         (the monotonic clock's multiples) and go out together; unicast is not held;
//                                         0: sent at once (frames held already keep their time)
// End of stdin or SIGTERM: write out the captures and exit 0. Errors go to stderr with exit code 1.
// The counters file, shared (mmap) so the runner reads it synchronously: per network in order, one u64 (frames
// captured), then for each directed link from*members+to four u64: delivered, dropped, duplicated, reordered.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_NETS 512
#define MAX_PORTS 1024
#define BATCH 32
#define FRAME_MAX 65536
#define PCAP_FLUSH (256 * 1024)
#define REORDER_HOLD_NS 2000000LL /* how long a frame picked for reordering is held back (fabric.ts: reorder) */
#define MAX_MACS 4096

struct cond {
  int up;
  double loss, delay_ms, jitter_ms, rate_kbit, duplicate, reorder;
};
struct link {
  int neighbour;
  struct cond c;
  int64_t busy_until_ns; /* when the rate limit has sent the frames queued before */
};
struct mac_entry {
  uint64_t mac;
  int member;
};
struct net {
  int members;
  struct link *links;      /* members x members */
  uint64_t *counters;      /* into the shared file */
  int *port_of;            /* member -> index into ports, or -1 */
  struct mac_entry *macs;  /* learnt source MACs */
  int nmacs;
  int pcap_fd;
  char *pcap_buf;
  size_t pcap_len;
  int pcap_failed;
  int64_t window_ns; /* 0, or broadcasts are held to the end of the current window */
};
struct port {
  int fd, net, member;
  struct sockaddr_in qemu;
};
struct held {
  int64_t due_ns;
  uint64_t seq;
  int port;
  size_t len;
  char *frame;
};

static struct net nets[MAX_NETS];
static int nnets;
static struct port ports[MAX_PORTS];
static int nports;
static struct held *heap;
static size_t heap_len, heap_cap;
static uint64_t heap_seq;
static volatile sig_atomic_t stopping;
static char ctl_buf[65536];
static size_t ctl_len;
static int ctl_eof;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("fleetlab-switch: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static int64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* xorshift64*: uniform in [0, 1). */
static double uniform(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return (double)((rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static void pcap_flush(struct net *n) {
  size_t off = 0;
  while (off < n->pcap_len && !n->pcap_failed) {
    ssize_t w = write(n->pcap_fd, n->pcap_buf + off, n->pcap_len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      fprintf(stderr, "fleetlab-switch: writing a capture failed (%s); frames are no longer captured on this network\n", strerror(errno));
      n->pcap_failed = 1;
      break;
    }
    off += (size_t)w;
  }
  n->pcap_len = 0;
}

static void pcap_record(struct net *n, const char *frame, size_t len) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  uint32_t hdr[4] = {(uint32_t)t.tv_sec, (uint32_t)t.tv_nsec, (uint32_t)len, (uint32_t)len};
  if (n->pcap_len + 16 + len > PCAP_FLUSH * 2) pcap_flush(n);
  memcpy(n->pcap_buf + n->pcap_len, hdr, 16);
  memcpy(n->pcap_buf + n->pcap_len + 16, frame, len);
  n->pcap_len += 16 + len;
  n->counters[0]++;
  if (n->pcap_len >= PCAP_FLUSH) pcap_flush(n);
}

static void flush_all(void) {
  for (int i = 0; i < nnets; i++) pcap_flush(&nets[i]);
}

static void send_to(int p, const char *frame, size_t len) {
  struct port *o = &ports[p];
  /* A full socket buffer drops the frame, as a congested link would; QEMU's end reads as fast as its guest takes. */
  sendto(o->fd, frame, len, MSG_DONTWAIT, (struct sockaddr *)&o->qemu, sizeof o->qemu);
}

static void heap_push(int64_t due, int p, const char *frame, size_t len) {
  if (heap_len == heap_cap) {
    heap_cap = heap_cap ? heap_cap * 2 : 256;
    heap = realloc(heap, heap_cap * sizeof *heap);
    if (!heap) die("out of memory for delayed frames");
  }
  struct held h = {due, heap_seq++, p, len, malloc(len)};
  if (!h.frame) die("out of memory for delayed frames");
  memcpy(h.frame, frame, len);
  size_t i = heap_len++;
  while (i > 0) {
    size_t up = (i - 1) / 2;
    if (heap[up].due_ns < h.due_ns || (heap[up].due_ns == h.due_ns && heap[up].seq < h.seq)) break;
    heap[i] = heap[up];
    i = up;
  }
  heap[i] = h;
}

static int held_before(const struct held *a, const struct held *b) {
  return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void heap_pop(void) {
  struct held last = heap[--heap_len];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const struct held *best = &last;
    if (l < heap_len && held_before(&heap[l], best)) m = l, best = &heap[l];
    if (r < heap_len && held_before(&heap[r], best)) m = r;
    if (m == i) break;
    heap[i] = heap[m];
    i = m;
  }
  if (heap_len) heap[i] = last;
}

static void send_due(void) {
  int64_t now = mono_ns();
  while (heap_len && heap[0].due_ns <= now) {
    send_to(heap[0].port, heap[0].frame, heap[0].len);
    free(heap[0].frame);
    heap_pop();
  }
}

static void deliver(struct net *n, int from, int to, const char *frame, size_t len) {
  struct link *l = &n->links[from * n->members + to];
  uint64_t *c = n->counters + 1 + 4 * (size_t)(from * n->members + to);
  if (!l->c.up || (l->c.loss > 0 && uniform() < l->c.loss)) {
    c[1]++;
    return;
  }
  c[0]++;
  int p = n->port_of[to];
  if (p < 0) return;
  double wait_ms = l->c.delay_ms + (l->c.jitter_ms > 0 ? uniform() * l->c.jitter_ms : 0);
  int64_t now = 0;
  if (l->c.rate_kbit > 0) {
    /* The link is busy sending earlier frames until busy_until; this one goes after them at the link's rate. */
    now = mono_ns();
    int64_t start = l->busy_until_ns > now ? l->busy_until_ns : now;
    l->busy_until_ns = start + (int64_t)((double)len * 8.0 / l->c.rate_kbit * 1e6);
    wait_ms += (double)(l->busy_until_ns - now) / 1e6;
  }
  if (l->c.reorder > 0 && uniform() < l->c.reorder) {
    c[3]++;
    wait_ms += REORDER_HOLD_NS / 1e6;
  }
  int copies = l->c.duplicate > 0 && uniform() < l->c.duplicate ? 2 : 1;
  if (copies == 2) c[2]++;
  int held = n->window_ns && (frame[0] & 1);
  int64_t due = 0;
  if (wait_ms > 0 || held) {
    due = (now ? now : mono_ns()) + (wait_ms > 0 ? (int64_t)(wait_ms * 1e6) : 0);
    /* A broadcast waits for the end of its window, with every other broadcast of the network sent in it. */
    if (held) due = (due / n->window_ns + 1) * n->window_ns;
  }
  for (int k = 0; k < copies; k++) {
    if (!due) send_to(p, frame, len);
    else heap_push(due, p, frame, len);
  }
}

static uint64_t mac_at(const char *b) {
  uint64_t m = 0;
  for (int i = 0; i < 6; i++) m = (m << 8) | (unsigned char)b[i];
  return m;
}

static void forward(int p, const char *frame, size_t len) {
  if (len < 14) return;
  struct port *in = &ports[p];
  struct net *n = &nets[in->net];
  int from = in->member;
  pcap_record(n, frame, len);
  uint64_t src = mac_at(frame + 6), dst = mac_at(frame);
  int known = -1, learnt = 0;
  for (int i = 0; i < n->nmacs; i++) {
    if (n->macs[i].mac == src) n->macs[i].member = from, learnt = 1;
    if (n->macs[i].mac == dst) known = n->macs[i].member;
  }
  if (!learnt && n->nmacs < MAX_MACS) n->macs[n->nmacs++] = (struct mac_entry){src, from};
  if (frame[0] & 1) known = -1;
  if (known >= 0) {
    if (n->links[from * n->members + known].neighbour) deliver(n, from, known, frame, len);
    return;
  }
  for (int to = 0; to < n->members; to++)
    if (n->links[from * n->members + to].neighbour) deliver(n, from, to, frame, len);
}

static void reply(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}

static struct net *net_arg(long id) {
  if (id < 0 || id >= nnets) die("no network %ld", id);
  return &nets[id];
}

static int member_arg(struct net *n, long m) {
  if (m < 0 || m >= n->members) die("no member %ld", m);
  return (int)m;
}

static void pcap_open(struct net *n, const char *path) {
  n->pcap_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (n->pcap_fd < 0) die("cannot create the capture %s: %s", path, strerror(errno));
  n->pcap_buf = malloc(PCAP_FLUSH * 2 + FRAME_MAX + 16);
  if (!n->pcap_buf) die("out of memory");
  /* libpcap, nanosecond stamps (a1b23c4d), version 2.4, snaplen 65535, linktype Ethernet. */
  uint32_t hdr[6] = {0xa1b23c4d, 2 | (4u << 16), 0, 0, 65535, 1};
  memcpy(n->pcap_buf, hdr, sizeof hdr);
  n->pcap_len = sizeof hdr;
  pcap_flush(n);
}

static void command(char *line) {
  char *rest = NULL;
  if (!strncmp(line, "net ", 4)) {
    long id = strtol(line + 4, &rest, 10), members = strtol(rest, &rest, 10);
    if (id != nnets || nnets == MAX_NETS || members < 1 || members > MAX_PORTS || *rest != ' ') die("bad command: %s", line);
    struct net *n = &nets[nnets++];
    n->members = (int)members;
    n->links = calloc((size_t)(members * members), sizeof *n->links);
    n->port_of = malloc(sizeof(int) * (size_t)members);
    n->macs = malloc(sizeof *n->macs * MAX_MACS);
    if (!n->links || !n->port_of || !n->macs) die("out of memory");
    for (long i = 0; i < members; i++) n->port_of[i] = -1;
    for (long i = 0; i < members * members; i++) n->links[i].c = (struct cond){1, 0, 0, 0, 0, 0, 0};
    pcap_open(n, rest + 1);
  } else if (!strncmp(line, "nb ", 3)) {
    struct net *n = net_arg(strtol(line + 3, &rest, 10));
    int a = member_arg(n, strtol(rest, &rest, 10)), b = member_arg(n, strtol(rest, &rest, 10));
    n->links[a * n->members + b].neighbour = n->links[b * n->members + a].neighbour = 1;
  } else if (!strncmp(line, "stats ", 6)) {
    size_t words = 0;
    for (int i = 0; i < nnets; i++) words += 1 + 4 * (size_t)nets[i].members * (size_t)nets[i].members;
    int fd = open(line + 6, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)(words * 8)) < 0) die("cannot create the counters file %s: %s", line + 6, strerror(errno));
    uint64_t *map = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) die("cannot map the counters file: %s", strerror(errno));
    close(fd);
    for (int i = 0; i < nnets; i++) {
      nets[i].counters = map;
      map += 1 + 4 * (size_t)nets[i].members * (size_t)nets[i].members;
    }
    reply("ready\n");
  } else if (!strncmp(line, "port ", 5)) {
    long id = strtol(line + 5, &rest, 10);
    struct net *n = net_arg(id);
    int m = member_arg(n, strtol(rest, &rest, 10));
    long qemu = strtol(rest, &rest, 10);
    if (qemu < 1 || qemu > 65535 || nports == MAX_PORTS || n->port_of[m] >= 0 || !n->counters) die("bad command: %s", line);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &alen) < 0) die("cannot open a port on 127.0.0.1: %s", strerror(errno));
    /* Room for a burst of full-size frames while the receiving QEMU is busy. */
    int buf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    ports[nports] = (struct port){fd, (int)id, m, {.sin_family = AF_INET, .sin_port = htons((uint16_t)qemu), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)}};
    n->port_of[m] = nports++;
    reply("port %ld %d %d\n", id, m, ntohs(a.sin_port));
  } else if (!strncmp(line, "window ", 7)) {
    struct net *n = net_arg(strtol(line + 7, &rest, 10));
    long ms = strtol(rest, &rest, 10);
    if (ms < 0 || ms > 1000) die("bad command: %s", line);
    n->window_ns = ms * 1000000LL;
  } else if (!strncmp(line, "set ", 4)) {
    struct net *n = net_arg(strtol(line + 4, &rest, 10));
    int a = member_arg(n, strtol(rest, &rest, 10)), b = member_arg(n, strtol(rest, &rest, 10));
    struct cond c;
    c.up = (int)strtol(rest, &rest, 10);
    double *f[] = {&c.loss, &c.delay_ms, &c.jitter_ms, &c.rate_kbit, &c.duplicate, &c.reorder};
    for (int i = 0; i < 6; i++) *f[i] = strtod(rest, &rest);
    n->links[a * n->members + b].c = c;
  } else if (*line) {
    die("unknown command: %s", line);
  }
}

/* Applies every complete command waiting on stdin (non-blocking). */
static void read_control(void) {
  for (;;) {
    ssize_t r = read(0, ctl_buf + ctl_len, sizeof ctl_buf - 1 - ctl_len);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) ctl_eof = 1;
    if (r <= 0) break;
    ctl_len += (size_t)r;
    char *start = ctl_buf, *nl;
    while ((nl = memchr(start, '\n', ctl_len - (size_t)(start - ctl_buf)))) {
      *nl = 0;
      command(start);
      start = nl + 1;
    }
    ctl_len -= (size_t)(start - ctl_buf);
    memmove(ctl_buf, start, ctl_len);
    if (ctl_len == sizeof ctl_buf - 1) die("a command longer than %zu bytes", sizeof ctl_buf);
  }
}

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

int main(void) {
  static char frames[BATCH][FRAME_MAX];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  /* SIGTERM is let in only while waiting in ppoll, so one arriving between the loop's check and the wait is not lost. */
  sigset_t term, waiting;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, &waiting);
  sigdelset(&waiting, SIGTERM);
  /* Ctrl-C reaches the whole process group: the runner decides when its networks end (end of stdin). */
  signal(SIGINT, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  rng ^= (uint64_t)mono_ns() * 0x2545F4914F6CDD1DULL;
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  struct pollfd *pfd = calloc(MAX_PORTS + 1, sizeof *pfd);
  if (!pfd) die("out of memory");
  while (!stopping && !ctl_eof) {
    pfd[0] = (struct pollfd){.fd = 0, .events = POLLIN};
    for (int i = 0; i < nports; i++) pfd[i + 1] = (struct pollfd){.fd = ports[i].fd, .events = POLLIN};
    struct timespec wait, *timeout = NULL;
    if (heap_len) {
      int64_t left = heap[0].due_ns - mono_ns();
      if (left < 0) left = 0;
      wait = (struct timespec){left / 1000000000LL, left % 1000000000LL};
      timeout = &wait;
    }
    flush_all();
    int ready = ppoll(pfd, (nfds_t)nports + 1, timeout, &waiting);
    if (ready < 0 && errno != EINTR) die("poll: %s", strerror(errno));
    if (ready > 0 && pfd[0].revents) read_control();
    for (int i = 0; ready > 0 && i < nports; i++) {
      if (!pfd[i + 1].revents) continue;
      for (;;) {
        for (int k = 0; k < BATCH; k++) {
          iov[k] = (struct iovec){frames[k], FRAME_MAX};
          msgs[k].msg_hdr = (struct msghdr){.msg_iov = &iov[k], .msg_iovlen = 1};
        }
        int got = recvmmsg(ports[i].fd, msgs, BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0) break;
        /* A command that arrived while these frames did applies to them: frames sent after it see it. */
        read_control();
        for (int k = 0; k < got; k++) forward(i, frames[k], msgs[k].msg_len);
        if (got < BATCH) break;
      }
    }
    send_due();
  }
  flush_all();
  return 0;
}
