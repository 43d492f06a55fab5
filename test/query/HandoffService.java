// A Java 17 service whose requests are read on one pool and answered by another (issue 15):
// com.sun.net.httpserver.HttpServer runs each exchange on a "reader" executor (it reads the request
// line and headers there); the handler hands the exchange to a "worker" pool, which takes a JDBC
// connection from a small shared pool, runs two queries on PostgreSQL and answers (/item/<n>), or
// runs them while the reader waits for the result and answers itself (/wait/<n>). No tracing headers.
//   java -cp <dir>:/usr/share/java/postgresql.jar HandoffService <port> <jdbc url>
// GET /item/<n> runs SELECT <n + 1000000> and SELECT <n + 2000000>: each query names its request
// (the test's ground truth) without repeating the path's token (no content evidence for assembly).
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;

public class HandoffService {
  static ThreadFactory named(String prefix) {
    AtomicInteger n = new AtomicInteger();
    return r -> {
      Thread t = new Thread(r, prefix + "-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  public static void main(String[] args) throws Exception {
    int port = Integer.parseInt(args[0]);
    String url = args[1];
    BlockingQueue<Connection> connections = new ArrayBlockingQueue<>(4);
    for (int i = 0; i < 4; i++) connections.add(DriverManager.getConnection(url));
    ExecutorService workers = Executors.newFixedThreadPool(8, named("worker"));
    HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 512);
    server.createContext("/item/", exchange -> workers.execute(() -> serve(exchange, connections)));
    server.createContext("/wait/", exchange -> answerAfter(exchange, connections, workers));
    server.setExecutor(Executors.newFixedThreadPool(4, named("reader")));
    server.start();
    System.out.println("ready " + port);
  }

  static long query(Connection c, long k) throws Exception {
    try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT " + k + " AS k")) {
      rs.next();
      return rs.getLong(1);
    }
  }

  static long number(HttpExchange exchange) {
    String path = exchange.getRequestURI().getPath();
    return Long.parseLong(path.substring(path.lastIndexOf('/') + 1));
  }

  static String queries(long n, BlockingQueue<Connection> connections) throws Exception {
    Connection c = connections.take();
    try {
      return "ok " + query(c, n + 1000000) + " " + query(c, n + 2000000);
    } finally {
      connections.put(c);
    }
  }

  /** The reader hands the queries to a worker, waits for them and answers itself. */
  static void answerAfter(HttpExchange exchange, BlockingQueue<Connection> connections, ExecutorService workers) {
    try (exchange) {
      long n = number(exchange);
      String result = CompletableFuture.supplyAsync(() -> {
        try {
          return queries(n, connections);
        } catch (Exception e) {
          throw new RuntimeException(e);
        }
      }, workers).get();
      byte[] body = ("wait " + n + ": " + result + "\n").getBytes(StandardCharsets.UTF_8);
      exchange.sendResponseHeaders(200, body.length);
      try (OutputStream out = exchange.getResponseBody()) {
        out.write(body);
      }
    } catch (Exception e) {
      try {
        exchange.sendResponseHeaders(500, -1);
      } catch (Exception ignored) {
        // the exchange is closed by try-with-resources
      }
    }
  }

  static void serve(HttpExchange exchange, BlockingQueue<Connection> connections) {
    try (exchange) {
      long n = number(exchange);
      byte[] body = ("item " + n + ": " + queries(n, connections) + "\n").getBytes(StandardCharsets.UTF_8);
      exchange.sendResponseHeaders(200, body.length);
      try (OutputStream out = exchange.getResponseBody()) {
        out.write(body);
      }
    } catch (Exception e) {
      try {
        exchange.sendResponseHeaders(500, -1);
      } catch (Exception ignored) {
        // the exchange is closed by try-with-resources
      }
    }
  }
}
