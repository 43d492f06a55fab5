// Wake-up loops for test/bench/handoff-wakeups.ts: prints the CPU time (user + sys, all threads) per
// iteration, then the wall time per iteration.
//   handoff-loop pingpong|handoff|waitback N PORT
// pingpong: two threads wake each other through two pipes, nothing on a socket (what most wake-ups
//   on a machine are: the hook's early exit, the waker has no live context).
// handoff: a thread pool's shape. A client thread sends 1 byte on a loopback TCP connection; a reader
//   thread reads it on the accepted socket (a live context) and wakes a worker through a pipe; the
//   worker answers 1 byte on the accepted socket (carrying the hand-off, which ends there); the client
//   reads it. Every hook path: the wake-up recorded, the send carrying it, the hand-off ended.
// waitback: the reader waits for the worker's result and answers itself (a CompletableFuture). The
//   worker makes one round trip on a second loopback connection (127.0.0.2, same port: a "database"
//   thread echoes), then wakes the reader through a pipe: the wake-back recorded, carried by the
//   reader's answer.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

static long n;
static int p1[2], p2[2], srv = -1, dbc = -1, dbs = -1;
static double cpu(void){struct rusage r;getrusage(RUSAGE_SELF,&r);return r.ru_utime.tv_sec*1e9+r.ru_utime.tv_usec*1e3+r.ru_stime.tv_sec*1e9+r.ru_stime.tv_usec*1e3;}
static double wall(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}

static void *echo(void *arg){ (void)arg; char c; for(long i=0;i<n;i++){ if(read(p1[0],&c,1)!=1||write(p2[1],&c,1)!=1) exit(1);} return 0; }
static void *reader(void *arg){ (void)arg; char c; for(long i=0;i<n;i++){ if(read(srv,&c,1)!=1||write(p1[1],&c,1)!=1) exit(1);} return 0; }
static void *worker(void *arg){ (void)arg; char c; for(long i=0;i<n;i++){ if(read(p1[0],&c,1)!=1||write(srv,&c,1)!=1) exit(1);} return 0; }
static void *wreader(void *arg){ (void)arg; char c; for(long i=0;i<n;i++){ if(read(srv,&c,1)!=1||write(p1[1],&c,1)!=1||read(p2[0],&c,1)!=1||write(srv,&c,1)!=1) exit(1);} return 0; }
static void *wworker(void *arg){ (void)arg; char c; for(long i=0;i<n;i++){ if(read(p1[0],&c,1)!=1||write(dbc,&c,1)!=1||read(dbc,&c,1)!=1||write(p2[1],&c,1)!=1) exit(1);} return 0; }
static void *db(void *arg){ (void)arg; char c; for(long i=0;i<n;i++){ if(read(dbs,&c,1)!=1||write(dbs,&c,1)!=1) exit(1);} return 0; }

int main(int argc,char**argv){
  if(argc<4){fprintf(stderr,"usage: handoff-loop pingpong|handoff|waitback N PORT\n");return 2;}
  const char*mode=argv[1]; n=atol(argv[2]); int port=atoi(argv[3]);
  if(pipe(p1)||pipe(p2)){perror("pipe");return 1;}
  pthread_t t1,t2; char c='x';
  if(!strcmp(mode,"pingpong")){
    pthread_create(&t1,0,echo,0);
    double c0=cpu(),w0=wall();
    for(long i=0;i<n;i++){ if(write(p1[1],&c,1)!=1||read(p2[0],&c,1)!=1) return 1; }
    printf("%.0f\n%.0f\n",(cpu()-c0)/n,(wall()-w0)/n);
    pthread_join(t1,0);
    return 0;
  }
  int l=socket(AF_INET,SOCK_STREAM,0), one=1; setsockopt(l,SOL_SOCKET,SO_REUSEADDR,&one,sizeof one);
  struct sockaddr_in s={.sin_family=AF_INET,.sin_port=htons(port),.sin_addr.s_addr=htonl(0x7f000001)};
  if(bind(l,(void*)&s,sizeof s)||listen(l,1)){perror("bind");return 1;}
  int cl=socket(AF_INET,SOCK_STREAM,0); if(connect(cl,(void*)&s,sizeof s)){perror("connect");return 1;}
  srv=accept(l,0,0); setsockopt(cl,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one); setsockopt(srv,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);
  pthread_t t3 = 0;
  if(!strcmp(mode,"waitback")){
    int l2=socket(AF_INET,SOCK_STREAM,0); setsockopt(l2,SOL_SOCKET,SO_REUSEADDR,&one,sizeof one);
    struct sockaddr_in d={.sin_family=AF_INET,.sin_port=htons(port),.sin_addr.s_addr=htonl(0x7f000002)};
    if(bind(l2,(void*)&d,sizeof d)||listen(l2,1)){perror("bind 127.0.0.2");return 1;}
    dbc=socket(AF_INET,SOCK_STREAM,0); if(connect(dbc,(void*)&d,sizeof d)){perror("connect db");return 1;}
    dbs=accept(l2,0,0); setsockopt(dbc,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one); setsockopt(dbs,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);
    pthread_create(&t1,0,wreader,0); pthread_create(&t2,0,wworker,0); pthread_create(&t3,0,db,0);
  } else {
    pthread_create(&t1,0,reader,0); pthread_create(&t2,0,worker,0);
  }
  double c0=cpu(),w0=wall();
  for(long i=0;i<n;i++){ if(write(cl,&c,1)!=1||read(cl,&c,1)!=1) return 1; }
  printf("%.0f\n%.0f\n",(cpu()-c0)/n,(wall()-w0)/n);
  pthread_join(t1,0); pthread_join(t2,0); if(t3) pthread_join(t3,0);
  return 0;
}
