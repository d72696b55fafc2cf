package org.dit4j.engine.parallel;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.BindException;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.function.Supplier;

/**
 * The start of a multi-node mesh: a small TCP exchange (plain {@code java.net}) that gives every node its place in the
 * world and the NCCL unique id, so that the nodes' ranks can then join one NCCL world ({@code ncclCommInitRank}).
 *
 * <p>Node 0 listens on the master address's port; every other node connects (retrying until the timeout, as node 0 may
 * start later) and sends a hello: protocol version, node count, node rank, world size, its local rank count and a job
 * fingerprint (the mesh and the request's options, {@link #fingerprint}). Node 0 waits for all {@code nnodes − 1}
 * hellos, checks them (ranks unique and in range, same node count, world size and fingerprint, local counts adding up
 * to the world size), makes the unique id ({@code idSupplier}: {@code ncclGetUniqueId} on GPUs, random bytes in tests)
 * and answers everyone with (world size, first global rank, id). Nodes take consecutive global ranks in node order.
 * A check that fails fails every node with the same message; node 0 keeps answering late nodes with it for a short
 * grace period.
 *
 * <p>No tensors travel here: every node runs the whole pipeline from the same deterministic inputs. The connections
 * stay open for the job ({@link Link}): a node that dies drops them, and the others stop instead of hanging in NCCL.
 */
public final class Rendezvous {
    /** Version of the exchange; nodes of different versions refuse each other. */
    public static final int PROTOCOL = 1;
    /** How long a node waits for the others unless told otherwise. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(5);
    private static final int MAGIC = 0x44344A52;   // "D4JR"
    private static final long RETRY_MS = 250, ERROR_GRACE_MS = 5000;

    private Rendezvous() {}

    /** {@code host:port} of node 0. */
    public record Address(String host, int port) {
        public Address {
            Objects.requireNonNull(host, "host");
            if (host.isBlank()) throw new IllegalArgumentException("master address: the host is empty");
            if (port < 1 || port > 65535) throw new IllegalArgumentException("master address: port " + port + " is outside 1..65535");
        }

        /** Parses {@code host:port} ({@code [v6]:port} for IPv6 literals). */
        public static Address parse(String s) {
            if (s == null || s.isBlank())
                throw new IllegalArgumentException("--master-addr must be host:port (e.g. 10.0.0.1:29500), got nothing");
            String t = s.strip();
            int colon = t.lastIndexOf(':');
            if (colon <= 0 || colon == t.length() - 1)
                throw new IllegalArgumentException("--master-addr must be host:port (e.g. 10.0.0.1:29500), got '" + s + "'");
            String host = t.substring(0, colon);
            if (host.startsWith("[") && host.endsWith("]")) host = host.substring(1, host.length() - 1);
            else if (host.contains(":"))
                throw new IllegalArgumentException("--master-addr '" + s + "': write IPv6 addresses in brackets, e.g. [fe80::1]:29500");
            int port;
            try {
                port = Integer.parseInt(t.substring(colon + 1));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--master-addr '" + s + "': the port must be a number, got '" + t.substring(colon + 1) + "'");
            }
            try {
                return new Address(host, port);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--master-addr '" + s + "': " + e.getMessage(), e);
            }
        }

        @Override public String toString() { return (host.contains(":") ? "[" + host + "]" : host) + ":" + port; }
    }

    /**
     * This node's place in the world.
     *
     * @param firstRank  global rank of this node's first local rank; its ranks are firstRank … firstRank+localRanks−1
     * @param uniqueId   the communicator id made on node 0 (128 bytes for NCCL)
     */
    public record Result(int nnodes, int nodeRank, int worldSize, int firstRank, int localRanks, byte[] uniqueId, Link link) {
        public Result {
            Objects.requireNonNull(link, "link (Link.NONE for none)");
        }

        /** A result without connections kept open (one node, tests). */
        public Result(int nnodes, int nodeRank, int worldSize, int firstRank, int localRanks, byte[] uniqueId) {
            this(nnodes, nodeRank, worldSize, firstRank, localRanks, uniqueId, Link.NONE);
        }

        @Override public byte[] uniqueId() { return uniqueId.clone(); }

        @Override public String toString() {
            return "node " + nodeRank + " of " + nnodes + ": ranks " + firstRank + ".." + (firstRank + localRanks - 1) + " of " + worldSize;
        }
    }

    /**
     * The rendezvous connections, kept open after the hand-out for the length of the job: node 0 holds one to every
     * other node, every other node one to node 0. A node whose process ends (or whose network fails) drops them without
     * a goodbye; {@link #watch} tells the others at once, so they can abort their communicators instead of waiting in
     * NCCL for a rank that is gone. {@link #close} says goodbye first: a node that finishes normally is no loss.
     */
    public static final class Link implements AutoCloseable {
        /** No connections (one node). */
        public static final Link NONE = new Link(-1, List.of(), List.of());
        private static final int BYE = 0x42;

        private final int me;
        private final List<Integer> peerNodes;
        private final List<Socket> sockets;
        private volatile boolean closing;

        Link(int me, List<Integer> peerNodes, List<Socket> sockets) {
            this.me = me;
            this.peerNodes = List.copyOf(peerNodes);
            this.sockets = List.copyOf(sockets);
        }

        /** The node ranks at the other ends, in order. */
        public List<Integer> peers() { return peerNodes; }

        /**
         * Watches every connection on a daemon thread; a connection lost without a goodbye (before {@link #close})
         * calls {@code onLoss} once per connection with a message naming the node.
         */
        public void watch(java.util.function.Consumer<String> onLoss) {
            for (int i = 0; i < sockets.size(); i++) {
                Socket s = sockets.get(i);
                int peer = peerNodes.get(i);
                Thread.ofPlatform().daemon().name("dit4j-rendezvous-watch-" + peer).start(() -> {
                    String why;
                    try {
                        s.setSoTimeout(0);
                        int b = s.getInputStream().read();
                        if (b == BYE) return;
                        why = b < 0 ? "closed its connection" : "sent an unexpected byte " + b;
                    } catch (IOException e) {
                        why = "lost its connection (" + e.getMessage() + ")";
                    }
                    lost("node " + peer + " (" + s.getRemoteSocketAddress() + ") " + why + " to node " + me
                            + " before the job ended: its process stopped, it failed, or the network failed; this node stops too "
                            + "(see node " + peer + "'s log for the cause)", onLoss);
                });
            }
        }

        /**
         * The first loss: every connection of this node is closed without a goodbye — on node 0 that tells every other
         * node at once — and {@code onLoss} runs. Later losses (the connections just closed) are silent.
         */
        private void lost(String message, java.util.function.Consumer<String> onLoss) {
            synchronized (this) {
                if (closing) return;
                closing = true;
            }
            for (Socket s : sockets) closeQuietly(s);
            onLoss.accept(message);
        }

        /** Says goodbye on every connection and closes them (the job ended normally on this node). Idempotent. */
        @Override public void close() {
            synchronized (this) {
                if (closing) return;
                closing = true;
            }
            for (Socket s : sockets) {
                try {
                    s.getOutputStream().write(BYE);
                    s.getOutputStream().flush();
                } catch (IOException ignored) {
                    // the other end is gone already: nothing to tell it
                }
                closeQuietly(s);
            }
        }

        /**
         * Closes the connections without a goodbye, as a crash does: the other nodes stop (call it when this node's
         * part of the job failed). Idempotent; afterwards {@link #close} does nothing.
         */
        public void sever() {
            synchronized (this) { closing = true; }
            for (Socket s : sockets) closeQuietly(s);
        }
    }

    /** What a node asks for: its rank among {@code nnodes}, its rank count, the world size and the job fingerprint. */
    public record Node(int nnodes, int nodeRank, int localRanks, int worldSize, String fingerprint) {
        public Node {
            if (nnodes < 1) throw new IllegalArgumentException("--nnodes must be at least 1, got " + nnodes);
            if (nodeRank < 0 || nodeRank >= nnodes)
                throw new IllegalArgumentException("--node-rank must be in [0, " + nnodes + ") for --nnodes " + nnodes + ", got " + nodeRank);
            if (localRanks < 1) throw new IllegalArgumentException("a node needs at least one local rank, got " + localRanks);
            if (worldSize < nnodes)
                throw new IllegalArgumentException("a world of " + worldSize + " ranks cannot span " + nnodes + " nodes (at least one rank each)");
            Objects.requireNonNull(fingerprint, "fingerprint");
        }
    }

    /**
     * A job fingerprint from named values, in order: "key=value; key=value". Nodes compare fingerprints, and a mismatch
     * names the keys that differ.
     */
    public static String fingerprint(Map<String, ?> values) {
        StringBuilder sb = new StringBuilder();
        for (Map.Entry<String, ?> e : values.entrySet()) {
            if (!sb.isEmpty()) sb.append("; ");
            sb.append(e.getKey()).append('=').append(e.getValue());
        }
        return sb.toString();
    }

    /**
     * Joins the rendezvous at {@code master} as {@code node}; blocks until every node has joined (or fails after
     * {@code timeout}). Node 0 calls {@code idSupplier} once, after all checks passed; other nodes never call it.
     */
    public static Result join(Address master, Node node, Supplier<byte[]> idSupplier, Duration timeout) {
        Objects.requireNonNull(master, "master");
        long deadline = System.nanoTime() + timeout.toNanos();
        if (node.nnodes() == 1) {
            check(node.localRanks() == node.worldSize(), "one node must hold the whole world of " + node.worldSize()
                    + " ranks, but it has " + node.localRanks());
            return new Result(1, 0, node.worldSize(), 0, node.localRanks(), idSupplier.get());
        }
        return node.nodeRank() == 0 ? lead(master, node, idSupplier, deadline, timeout) : follow(master, node, deadline, timeout);
    }

    // ------------------------------------------------------------------ node 0

    private record Hello(int version, int nnodes, int nodeRank, int localRanks, int worldSize, String fingerprint) {}

    private record Peer(Socket socket, Hello hello) {}

    private static Result lead(Address master, Node me, Supplier<byte[]> idSupplier, long deadline, Duration timeout) {
        List<Peer> peers = new ArrayList<>();
        boolean handedOut = false;
        try (ServerSocket server = bind(master)) {
            String error = null;
            while (error == null && peers.size() < me.nnodes() - 1) {
                Socket s = accept(server, deadline, master, me, peers, timeout);
                Hello h;
                try {
                    h = readHello(s, deadline);
                } catch (IOException e) {
                    closeQuietly(s);
                    continue;   // not a dit4j node (a port scan, a peer that died while saying hello): ignore it
                } catch (IllegalStateException e) {
                    error = e.getMessage();
                    peers.add(new Peer(s, null));
                    break;
                }
                peers.add(new Peer(s, h));
                error = checkHello(me, h, peers);
            }
            if (error == null) {
                Map<Integer, Integer> local = new TreeMap<>();
                local.put(0, me.localRanks());
                for (Peer p : peers) local.put(p.hello().nodeRank(), p.hello().localRanks());
                int sum = local.values().stream().mapToInt(Integer::intValue).sum();
                if (sum != me.worldSize())
                    error = "the nodes' local ranks " + local + " (node → ranks) add up to " + sum + ", but the mesh has "
                            + me.worldSize() + " ranks; give every node as many GPUs as the mesh needs (world size / nnodes each)";
            }
            if (error != null) {
                fail(server, peers, me.nnodes() - 1, error, deadline);
                throw new IllegalStateException("rendezvous at " + master + " failed: " + error);
            }
            byte[] id = idSupplier.get();
            Map<Integer, Integer> first = new TreeMap<>();
            int next = me.localRanks();
            peers.sort((a, b) -> Integer.compare(a.hello().nodeRank(), b.hello().nodeRank()));
            for (Peer p : peers) {
                first.put(p.hello().nodeRank(), next);
                next += p.hello().localRanks();
            }
            for (Peer p : peers) {
                try {
                    DataOutputStream out = new DataOutputStream(p.socket().getOutputStream());
                    out.writeInt(MAGIC);
                    out.writeInt(PROTOCOL);
                    out.writeByte(0);
                    out.writeInt(me.worldSize());
                    out.writeInt(first.get(p.hello().nodeRank()));
                    out.writeInt(id.length);
                    out.write(id);
                    out.flush();
                } catch (IOException e) {
                    throw new IllegalStateException("rendezvous at " + master + ": node " + p.hello().nodeRank() + " ("
                            + p.socket().getRemoteSocketAddress() + ") closed its connection before node 0 could answer: " + e.getMessage()
                            + "; see that node's log, then restart all nodes", e);
                }
            }
            List<Integer> nodes = new ArrayList<>();
            List<Socket> sockets = new ArrayList<>();
            for (Peer p : peers) {
                nodes.add(p.hello().nodeRank());
                sockets.add(p.socket());
            }
            Result r = new Result(me.nnodes(), 0, me.worldSize(), 0, me.localRanks(), id, new Link(0, nodes, sockets));
            handedOut = true;
            return r;
        } catch (IOException e) {
            throw new IllegalStateException("rendezvous at " + master + " (node 0): " + e.getMessage(), e);
        } finally {
            if (!handedOut) for (Peer p : peers) closeQuietly(p.socket());
        }
    }

    private static ServerSocket bind(Address master) throws IOException {
        InetAddress bindTo = localAddress(master.host());
        ServerSocket server = new ServerSocket();
        try {
            server.setReuseAddress(true);
            server.bind(bindTo == null ? new InetSocketAddress(master.port()) : new InetSocketAddress(bindTo, master.port()), 64);
        } catch (BindException e) {
            server.close();
            throw new IllegalStateException("node 0 cannot listen on port " + master.port() + (bindTo == null ? "" : " of " + bindTo.getHostAddress())
                    + ": " + e.getMessage() + " — the port is in use (another dit4j node 0, or an earlier run still closing?) or not "
                    + "allowed; choose another port in --master-addr on every node", e);
        } catch (IOException e) {
            server.close();
            throw e;
        }
        return server;
    }

    /** The master host's address when it is one of this machine's (bind it), or null (bind every interface). */
    private static InetAddress localAddress(String host) {
        try {
            InetAddress a = InetAddress.getByName(host);
            if (a.isLoopbackAddress() || a.isAnyLocalAddress()) return a.isAnyLocalAddress() ? null : a;
            return NetworkInterface.getByInetAddress(a) != null ? a : null;
        } catch (UnknownHostException | SocketException e) {
            return null;   // a name only the other nodes resolve (or NAT): listen everywhere
        }
    }

    private static Socket accept(ServerSocket server, long deadline, Address master, Node me, List<Peer> peers, Duration timeout)
            throws IOException {
        long left = remainingMs(deadline);
        if (left <= 0) throw timeoutAtLead(master, me, peers, timeout);
        server.setSoTimeout((int) Math.min(Integer.MAX_VALUE, left));
        try {
            return server.accept();
        } catch (SocketTimeoutException e) {
            throw timeoutAtLead(master, me, peers, timeout);
        }
    }

    private static IllegalStateException timeoutAtLead(Address master, Node me, List<Peer> peers, Duration timeout) {
        List<Integer> missing = new ArrayList<>();
        for (int r = 1; r < me.nnodes(); r++) {
            int rank = r;
            if (peers.stream().noneMatch(p -> p.hello() != null && p.hello().nodeRank() == rank)) missing.add(r);
        }
        for (Peer p : peers) closeQuietly(p.socket());
        return new IllegalStateException("rendezvous at " + master + ": node 0 waited " + format(timeout) + " but only " + peers.size()
                + " of the " + (me.nnodes() - 1) + " other nodes joined; missing node ranks " + missing + ". Start them with --nnodes "
                + me.nnodes() + " --node-rank R --master-addr " + master + " (the same options as node 0), and check that they can "
                + "reach this host and port");
    }

    private static Hello readHello(Socket s, long deadline) throws IOException {
        s.setSoTimeout((int) Math.max(1, Math.min(remainingMs(deadline), 30_000)));
        s.setTcpNoDelay(true);
        DataInputStream in = new DataInputStream(s.getInputStream());
        int magic = in.readInt();
        if (magic != MAGIC) throw new IOException("not a dit4j node: no rendezvous greeting");
        int version = in.readInt();
        if (version != PROTOCOL)
            throw new IllegalStateException("the node at " + s.getRemoteSocketAddress() + " speaks rendezvous protocol " + version
                    + " but node 0 speaks " + PROTOCOL + "; run the same dit4j version on every node");
        return new Hello(version, in.readInt(), in.readInt(), in.readInt(), in.readInt(), in.readUTF());
    }

    /** The first problem with the newest hello, or null. */
    private static String checkHello(Node me, Hello h, List<Peer> peers) {
        if (h.nnodes() != me.nnodes())
            return "node " + h.nodeRank() + " was started with --nnodes " + h.nnodes() + " but node 0 with --nnodes " + me.nnodes()
                    + "; give every node the same --nnodes";
        if (h.nodeRank() < 1 || h.nodeRank() >= me.nnodes())
            return "a node was started with --node-rank " + h.nodeRank() + ", outside 1.." + (me.nnodes() - 1) + " (node 0 is the one "
                    + "listening); give the nodes the ranks 0.." + (me.nnodes() - 1) + ", each once";
        for (int i = 0; i < peers.size() - 1; i++) {
            Peer p = peers.get(i);
            if (p.hello() != null && p.hello().nodeRank() == h.nodeRank())
                return "two nodes were started with --node-rank " + h.nodeRank() + " (from " + p.socket().getRemoteSocketAddress()
                        + " and " + peers.getLast().socket().getRemoteSocketAddress() + "); give the nodes the ranks 0.." + (me.nnodes() - 1)
                        + ", each once";
        }
        if (h.worldSize() != me.worldSize())
            return "node " + h.nodeRank() + " asks for a mesh of " + h.worldSize() + " ranks but node 0 for " + me.worldSize()
                    + "; give every node the same --gpus/--ulysses/--ring/--cfg-parallel/--dp (the whole mesh)";
        if (!h.fingerprint().equals(me.fingerprint()))
            return "node " + h.nodeRank() + " runs a different job than node 0: " + difference(me.fingerprint(), h.fingerprint(), h.nodeRank())
                    + "; start every node with the same options";
        return null;
    }

    /** The keys whose values differ between two fingerprints, with both values. */
    static String difference(String lead, String other, int node) {
        Map<String, String> a = parse(lead), b = parse(other);
        List<String> diffs = new ArrayList<>();
        for (String k : a.keySet()) if (!Objects.equals(a.get(k), b.get(k))) diffs.add(k + ": node 0 " + show(a.get(k)) + ", node " + node + " " + show(b.get(k)));
        for (String k : b.keySet()) if (!a.containsKey(k)) diffs.add(k + ": node 0 (none), node " + node + " " + show(b.get(k)));
        if (diffs.isEmpty()) return "node 0 '" + lead + "', node " + node + " '" + other + "'";
        return String.join("; ", diffs);
    }

    private static Map<String, String> parse(String fingerprint) {
        Map<String, String> m = new LinkedHashMap<>();
        for (String part : fingerprint.split("; ")) {
            int eq = part.indexOf('=');
            if (eq < 0) m.put(part, "");
            else m.put(part.substring(0, eq), part.substring(eq + 1));
        }
        return m;
    }

    private static String show(String v) { return v == null ? "(none)" : "'" + v + "'"; }

    /** Answers every connected node, and nodes still missing for a short grace period, with the error. */
    private static void fail(ServerSocket server, List<Peer> peers, int others, String error, long deadline) {
        for (Peer p : peers) sendError(p.socket(), error);
        long graceEnd = System.currentTimeMillis() + Math.min(ERROR_GRACE_MS, Math.max(0, remainingMs(deadline)));
        int answered = peers.size();
        while (answered < others) {
            long left = graceEnd - System.currentTimeMillis();
            if (left <= 0) break;
            try {
                server.setSoTimeout((int) left);
                try (Socket s = server.accept()) {
                    try {
                        readHello(s, System.nanoTime() + Math.min(left, 2000) * 1_000_000);   // read its hello, then answer
                    } catch (IOException | IllegalStateException ignored) {
                        // answer anyway
                    }
                    sendError(s, error);
                    answered++;
                }
            } catch (IOException e) {
                break;
            }
        }
    }

    private static void sendError(Socket s, String error) {
        try {
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            out.writeInt(MAGIC);
            out.writeInt(PROTOCOL);
            out.writeByte(1);
            out.writeUTF(truncate(error));
            out.flush();
        } catch (IOException ignored) {
            // that node is gone; it fails on its own
        }
    }

    // ------------------------------------------------------------------ nodes 1..N−1

    private static Result follow(Address master, Node me, long deadline, Duration timeout) {
        Socket s = connect(master, me, deadline, timeout);
        boolean handedOut = false;
        try {
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            out.writeInt(MAGIC);
            out.writeInt(PROTOCOL);
            out.writeInt(me.nnodes());
            out.writeInt(me.nodeRank());
            out.writeInt(me.localRanks());
            out.writeInt(me.worldSize());
            out.writeUTF(truncate(me.fingerprint()));
            out.flush();
            s.setSoTimeout((int) Math.max(1, Math.min(Integer.MAX_VALUE, remainingMs(deadline))));
            DataInputStream in = new DataInputStream(s.getInputStream());
            int magic = in.readInt(), version = in.readInt();
            if (magic != MAGIC)
                throw new IllegalStateException("rendezvous at " + master + ": the program listening there is not a dit4j node 0; check "
                        + "--master-addr");
            if (version != PROTOCOL)
                throw new IllegalStateException("rendezvous at " + master + ": node 0 speaks rendezvous protocol " + version + " but node "
                        + me.nodeRank() + " speaks " + PROTOCOL + "; run the same dit4j version on every node");
            int status = in.readByte();
            if (status != 0) throw new IllegalStateException("rendezvous at " + master + " failed: " + in.readUTF());
            int world = in.readInt(), first = in.readInt(), len = in.readInt();
            if (world != me.worldSize() || first < 1 || first + me.localRanks() > world || len < 1 || len > 4096)
                throw new IllegalStateException("rendezvous at " + master + ": node 0 answered world size " + world + ", first rank "
                        + first + ", id of " + len + " bytes, which does not fit node " + me.nodeRank() + " (" + me.localRanks()
                        + " local ranks of " + me.worldSize() + ")");
            byte[] id = in.readNBytes(len);
            if (id.length != len) throw new EOFException("id cut short");
            Result r = new Result(me.nnodes(), me.nodeRank(), world, first, me.localRanks(), id, new Link(me.nodeRank(), List.of(0), List.of(s)));
            handedOut = true;
            return r;
        } catch (SocketTimeoutException e) {
            throw new IllegalStateException("rendezvous at " + master + ": node 0 accepted node " + me.nodeRank() + " but did not answer within "
                    + format(timeout) + "; it answers once all " + me.nnodes() + " nodes have joined: check that every node was started", e);
        } catch (EOFException | SocketException e) {
            throw new IllegalStateException("rendezvous at " + master + ": node 0 closed the connection before answering node "
                    + me.nodeRank() + " (" + e.getMessage() + "); did node 0 fail or time out? See its log, then restart all nodes", e);
        } catch (IOException e) {
            throw new IllegalStateException("rendezvous at " + master + " (node " + me.nodeRank() + "): " + e.getMessage(), e);
        } finally {
            if (!handedOut) closeQuietly(s);
        }
    }

    private static Socket connect(Address master, Node me, long deadline, Duration timeout) {
        String last = "no attempt";
        while (true) {
            long left = remainingMs(deadline);
            if (left <= 0)
                throw new IllegalStateException("rendezvous: node " + me.nodeRank() + " could not reach node 0 at " + master + " within "
                        + format(timeout) + " (last error: " + last + "); check that node 0 was started with --node-rank 0 and the "
                        + "same --master-addr, that " + master.host() + " resolves and is reachable from this machine, and that port "
                        + master.port() + " is open in firewalls");
            Socket s = new Socket();
            try {
                s.connect(new InetSocketAddress(master.host(), master.port()), (int) Math.min(left, 10_000));
                s.setTcpNoDelay(true);
                return s;
            } catch (ConnectException | SocketTimeoutException | UnknownHostException e) {
                last = e.getClass().getSimpleName() + ": " + e.getMessage();
            } catch (IOException e) {
                last = e.getClass().getSimpleName() + ": " + e.getMessage();
            }
            closeQuietly(s);
            try {
                Thread.sleep(Math.min(RETRY_MS, Math.max(1, remainingMs(deadline))));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("rendezvous: interrupted while connecting to node 0 at " + master, e);
            }
        }
    }

    // ------------------------------------------------------------------ helpers

    private static long remainingMs(long deadlineNanos) { return (deadlineNanos - System.nanoTime()) / 1_000_000; }

    private static String truncate(String s) { return s.length() > 16000 ? s.substring(0, 16000) + "…" : s; }

    static String format(Duration d) {
        long ms = d.toMillis();
        if (ms < 1000) return ms + " ms";
        long s = ms / 1000;
        return s >= 60 ? (s / 60) + " min" + (s % 60 == 0 ? "" : " " + s % 60 + " s") : s + " s";
    }

    private static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException ignored) {
            // closing after the exchange: nothing left to report
        }
    }

    private static void check(boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException(message);
    }
}
