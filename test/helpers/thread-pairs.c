/*
 * thread-pairs: a process whose threads exit in bursts while it is read.
 *
 * Usage: thread-pairs <pairs> <rounds>
 *
 * Each round starts <pairs> pairs of threads, a dying one then a staying
 * one, so the thread list alternates between them; prints
 * "ready <pid> <tid of each staying thread>" and, on a line from stdin, lets
 * every dying thread of the round exit at once, then prints "done". Staying
 * threads never exit: a read of the process that misses one of them is
 * wrong. This is the case a task/ listing gets wrong when the thread it
 * stands on exits (see native/proc_reader.cc).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static sem_t go;

static void *dying(void *arg) {
  (void)arg;
  sem_wait(&go);
  return NULL;
}

static void *staying(void *arg) {
  *(volatile int *)arg = (int)syscall(SYS_gettid);
  for (;;) pause();
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: thread-pairs <pairs> <rounds>\n");
    return 2;
  }
  int pairs = atoi(argv[1]), rounds = atoi(argv[2]);
  sem_init(&go, 0, 0);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 65536);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  char line[8];
  for (int round = 0; round < rounds; round++) {
    volatile int *tids = calloc((size_t)pairs, sizeof *tids);
    pthread_t thread;
    for (int i = 0; i < pairs; i++) {
      if (pthread_create(&thread, &attr, dying, NULL) || pthread_create(&thread, &attr, staying, (void *)&tids[i])) {
        perror("thread-pairs: pthread_create");
        return 1;
      }
    }
    for (int i = 0; i < pairs; i++) while (tids[i] == 0) usleep(100);
    printf("ready %d", getpid());
    for (int i = 0; i < pairs; i++) printf(" %d", tids[i]);
    printf("\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) return 0;
    for (int i = 0; i < pairs; i++) sem_post(&go);
    usleep(30000);
    printf("done\n");
    fflush(stdout);
  }
  // Stays until killed: its exit must not be mistaken for a lost thread.
  for (;;) pause();
}
