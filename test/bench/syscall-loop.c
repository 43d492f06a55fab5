// Syscall loop for test/bench/syscall-loop.ts: prints the CPU time (user + sys) per iteration.
//   syscall-loop getppid|devnull|tcp N PORT
// getppid: a syscall we never hook; devnull: write(2) on a non-socket fd (the enter walk, then
// dropped); tcp: write(2) + read(2) of 64 bytes over a loopback TCP connection on PORT.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/syscall.h>
static double cpu(void){struct rusage r;getrusage(RUSAGE_SELF,&r);return r.ru_utime.tv_sec*1e9+r.ru_utime.tv_usec*1e3+r.ru_stime.tv_sec*1e9+r.ru_stime.tv_usec*1e3;}
int main(int argc,char**argv){
  const char*mode=argv[1]; long n=atol(argv[2]); int port=atoi(argv[3]);
  char buf[64]; memset(buf,'x',sizeof buf);
  int a=-1,b=-1;
  if(!strcmp(mode,"tcp")){
    int l=socket(AF_INET,SOCK_STREAM,0); int one=1; setsockopt(l,SOL_SOCKET,SO_REUSEADDR,&one,sizeof one);
    struct sockaddr_in s={.sin_family=AF_INET,.sin_port=htons(port),.sin_addr.s_addr=htonl(0x7f000001)};
    if(bind(l,(void*)&s,sizeof s)||listen(l,1)){perror("bind");return 1;}
    a=socket(AF_INET,SOCK_STREAM,0); if(connect(a,(void*)&s,sizeof s)){perror("connect");return 1;}
    b=accept(l,0,0); setsockopt(a,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);
  } else if(!strcmp(mode,"devnull")) { a=open("/dev/null",O_WRONLY); }
  double t0=cpu();
  for(long i=0;i<n;i++){
    if(a<0) syscall(SYS_getppid);
    else if(b<0) { if(write(a,buf,sizeof buf)<0) return 1; }
    else { if(write(a,buf,sizeof buf)!=sizeof buf) return 1; if(read(b,buf,sizeof buf)<=0) return 1; }
  }
  printf("%.0f\n",(cpu()-t0)/n);
  return 0;
}
