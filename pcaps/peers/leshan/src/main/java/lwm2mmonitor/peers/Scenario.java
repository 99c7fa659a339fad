package lwm2mmonitor.peers;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;

import org.eclipse.californium.core.config.CoapConfig;
import org.eclipse.californium.elements.config.Configuration;
import org.eclipse.californium.scandium.config.DtlsConfig;
import org.eclipse.californium.scandium.dtls.cipher.CipherSuite;
import org.eclipse.leshan.client.LeshanClient;
import org.eclipse.leshan.client.LeshanClientBuilder;
import org.eclipse.leshan.client.californium.endpoint.CaliforniumClientEndpointsProvider;
import org.eclipse.leshan.client.californium.endpoint.ClientProtocolProvider;
import org.eclipse.leshan.client.engine.DefaultRegistrationEngineFactory;
import org.eclipse.leshan.client.object.Security;
import org.eclipse.leshan.client.object.Server;
import org.eclipse.leshan.client.resource.LwM2mObjectEnabler;
import org.eclipse.leshan.client.resource.ObjectsInitializer;
import org.eclipse.leshan.client.servers.LwM2mServer;
import org.eclipse.leshan.core.LwM2mId;
import org.eclipse.leshan.core.endpoint.Protocol;
import org.eclipse.leshan.core.link.lwm2m.attributes.LwM2mAttributeSet;
import org.eclipse.leshan.core.link.lwm2m.attributes.LwM2mAttributes;
import org.eclipse.leshan.core.model.ObjectLoader;
import org.eclipse.leshan.core.model.ObjectModel;
import org.eclipse.leshan.core.model.StaticModel;
import org.eclipse.leshan.core.node.LwM2mObjectInstance;
import org.eclipse.leshan.core.node.LwM2mPath;
import org.eclipse.leshan.core.node.LwM2mResource;
import org.eclipse.leshan.core.node.LwM2mSingleResource;
import org.eclipse.leshan.core.node.TimestampedLwM2mNodes;
import org.eclipse.leshan.core.observation.CompositeObservation;
import org.eclipse.leshan.core.observation.Observation;
import org.eclipse.leshan.core.observation.SingleObservation;
import org.eclipse.leshan.core.request.BootstrapDeleteRequest;
import org.eclipse.leshan.core.request.BootstrapDiscoverRequest;
import org.eclipse.leshan.core.request.BootstrapDownlinkRequest;
import org.eclipse.leshan.core.request.BootstrapReadRequest;
import org.eclipse.leshan.core.request.BootstrapWriteRequest;
import org.eclipse.leshan.core.request.CancelCompositeObservationRequest;
import org.eclipse.leshan.core.request.CancelObservationRequest;
import org.eclipse.leshan.core.request.ContentFormat;
import org.eclipse.leshan.core.request.CreateRequest;
import org.eclipse.leshan.core.request.DeleteRequest;
import org.eclipse.leshan.core.request.DiscoverRequest;
import org.eclipse.leshan.core.request.DownlinkRequest;
import org.eclipse.leshan.core.request.ExecuteRequest;
import org.eclipse.leshan.core.request.ObserveCompositeRequest;
import org.eclipse.leshan.core.request.ObserveRequest;
import org.eclipse.leshan.core.request.ReadCompositeRequest;
import org.eclipse.leshan.core.request.ReadRequest;
import org.eclipse.leshan.core.request.SendRequest;
import org.eclipse.leshan.core.request.WriteAttributesRequest;
import org.eclipse.leshan.core.request.WriteCompositeRequest;
import org.eclipse.leshan.core.request.WriteRequest;
import org.eclipse.leshan.core.request.WriteRequest.Mode;
import org.eclipse.leshan.core.response.LwM2mResponse;
import org.eclipse.leshan.core.response.ObserveCompositeResponse;
import org.eclipse.leshan.core.response.ObserveResponse;
import org.eclipse.leshan.core.response.SendResponse;
import org.eclipse.leshan.server.LeshanServer;
import org.eclipse.leshan.server.LeshanServerBuilder;
import org.eclipse.leshan.server.bootstrap.BootstrapFailureCause;
import org.eclipse.leshan.server.bootstrap.BootstrapSession;
import org.eclipse.leshan.server.bootstrap.BootstrapSessionAdapter;
import org.eclipse.leshan.server.bootstrap.BootstrapTaskProvider;
import org.eclipse.leshan.server.bootstrap.LeshanBootstrapServer;
import org.eclipse.leshan.server.bootstrap.LeshanBootstrapServerBuilder;
import org.eclipse.leshan.server.californium.bootstrap.endpoint.CaliforniumBootstrapServerEndpointsProvider;
import org.eclipse.leshan.server.californium.bootstrap.endpoint.coap.CoapBootstrapServerProtocolProvider;
import org.eclipse.leshan.server.californium.endpoint.CaliforniumServerEndpointsProvider;
import org.eclipse.leshan.server.californium.endpoint.coap.CoapOscoreServerEndpointFactory;
import org.eclipse.leshan.server.californium.endpoint.coap.CoapServerProtocolProvider;
import org.eclipse.leshan.client.object.Oscore;
import org.eclipse.leshan.core.oscore.OscoreSetting;
import org.eclipse.leshan.server.californium.endpoint.coaps.CoapsServerProtocolProvider;
import org.eclipse.leshan.server.model.VersionedModelProvider;
import org.eclipse.leshan.server.observation.ObservationListener;
import org.eclipse.leshan.server.registration.Registration;
import org.eclipse.leshan.server.registration.RegistrationListener;
import org.eclipse.leshan.server.registration.RegistrationUpdate;
import org.eclipse.leshan.server.security.InMemorySecurityStore;
import org.eclipse.leshan.server.security.SecurityInfo;
import org.eclipse.leshan.server.send.SendListener;

/**
 * Deterministic Leshan scenarios (bootstrap server + LwM2M server + client in one JVM on 127.0.0.1) used to produce
 * reference packet captures for lwm2m-monitor.
 *
 * Usage: java -jar leshan-scenario.jar (bootstrap|nosec|psk|psk-cid)
 */
public class Scenario {

    // ---- fixed parameters (documented in pcaps/README.md) ----
    static final String LOOPBACK = "127.0.0.1";
    static final int SERVER_COAP_PORT = 5683;
    static final int SERVER_COAPS_PORT = 5684;
    static final int BS_SERVER_PORT = 5783;
    static final int CLIENT_COAP_PORT = 56830;
    static final int CLIENT_COAPS_PORT = 56840;
    static final int SHORT_SERVER_ID = 123;
    static final long LIFETIME = 300;
    static final String PSK_IDENTITY = "leshan-psk-01";
    static final String PSK_KEY_HEX = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    static final String OSCORE_MASTER_SECRET_HEX = "0102030405060708090a0b0c0d0e0f10";
    static final String OSCORE_MASTER_SALT_HEX = "9e7ca92223786340";
    static final String OSCORE_CLIENT_ID_HEX = "01"; // client Sender ID = server Recipient ID
    static final String OSCORE_SERVER_ID_HEX = "02"; // server Sender ID = client Recipient ID
    static final int OSCORE_AEAD = 10; // AES-CCM-16-64-128
    static final int OSCORE_HKDF = -10; // HKDF SHA-256

    static LeshanServer server;
    static LeshanClient client;
    static final AtomicReference<Registration> registration = new AtomicReference<>();
    static final CountDownLatch registered = new CountDownLatch(1);
    static final CountDownLatch unregistered = new CountDownLatch(1);
    static volatile CountDownLatch updated = new CountDownLatch(1);
    static volatile CountDownLatch notifications = new CountDownLatch(0);
    static volatile CountDownLatch sendReceived = new CountDownLatch(1);

    public static void main(String[] args) throws Exception {
        String mode = args.length > 0 ? args[0] : "nosec";
        int rc;
        try {
            switch (mode) {
            case "bootstrap":
                rc = runBootstrap();
                break;
            case "nosec":
                rc = runNoSecOperations();
                break;
            case "psk":
                rc = runPsk(false);
                break;
            case "psk-cid":
                rc = runPsk(true);
                break;
            case "oscore":
                rc = runOscore();
                break;
            default:
                System.err.println("unknown mode " + mode);
                rc = 2;
            }
        } catch (Throwable t) {
            t.printStackTrace();
            rc = 1;
        }
        System.out.println("[scenario] done rc=" + rc);
        System.out.flush();
        System.exit(rc);
    }

    // ------------------------------------------------------------------ helpers

    static void log(String fmt, Object... args) {
        System.out.println(String.format(fmt, args));
        System.out.flush();
    }

    static byte[] hex(String s) {
        byte[] b = new byte[s.length() / 2];
        for (int i = 0; i < b.length; i++)
            b[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        return b;
    }

    static void sleep(long ms) throws InterruptedException {
        Thread.sleep(ms);
    }

    static List<ObjectModel> models() {
        List<ObjectModel> models = new ArrayList<>(ObjectLoader.loadDefault());
        models.add(ScenarioObjects.testObjectModel());
        return models;
    }

    static List<ObjectModel> serverModels() {
        List<ObjectModel> models = new ArrayList<>(ObjectLoader.loadAllDefault());
        models.add(ScenarioObjects.testObjectModel());
        return models;
    }

    static int failures = 0;

    static <T extends LwM2mResponse> T op(String label, DownlinkRequest<T> req) throws InterruptedException {
        T resp = server.send(registration.get(), req, 10000);
        if (resp == null) {
            failures++;
            log("[server] %-34s %s => TIMEOUT", label, req);
        } else {
            log("[server] %-34s %s => %s", label, req, resp.getCode());
            log("         response: %s", resp);
        }
        return resp;
    }

    static LeshanServer buildServer(InMemorySecurityStore store, Consumer<Configuration> tweak) {
        return buildServer(store, tweak, false);
    }

    static LeshanServer buildServer(InMemorySecurityStore store, Consumer<Configuration> tweak, boolean oscore) {
        CaliforniumServerEndpointsProvider.Builder eb = new CaliforniumServerEndpointsProvider.Builder(
                new CoapServerProtocolProvider(), new CoapsServerProtocolProvider());
        Configuration c = eb.createDefaultConfiguration();
        c.set(CoapConfig.MAX_MESSAGE_SIZE, 1024);
        c.set(CoapConfig.PREFERRED_BLOCK_SIZE, 512);
        if (tweak != null)
            tweak.accept(c);
        eb.setConfiguration(c);
        if (oscore)
            eb.addEndpoint(new CoapOscoreServerEndpointFactory(
                    java.net.URI.create("coap://" + LOOPBACK + ":" + SERVER_COAP_PORT)));
        else
            eb.addEndpoint(new InetSocketAddress(LOOPBACK, SERVER_COAP_PORT), Protocol.COAP);
        eb.addEndpoint(new InetSocketAddress(LOOPBACK, SERVER_COAPS_PORT), Protocol.COAPS);

        LeshanServerBuilder b = new LeshanServerBuilder();
        b.setEndpointsProviders(eb.build());
        b.setObjectModelProvider(new VersionedModelProvider(serverModels()));
        b.setSecurityStore(store);
        LeshanServer s = b.build();
        s.getRegistrationService().addListener(new RegistrationListener() {
            @Override
            public void registered(Registration reg, Registration previousReg,
                    Collection<Observation> previousObservations) {
                log("[server] REGISTERED ep=%s id=%s lwm2m=%s lifetime=%s binding=%s links=%s", reg.getEndpoint(),
                        reg.getId(), reg.getLwM2mVersion(), reg.getLifeTimeInSec(), reg.getBindingMode(),
                        Arrays.toString(reg.getObjectLinks()));
                registration.set(reg);
                registered.countDown();
            }

            @Override
            public void updated(RegistrationUpdate update, Registration updatedReg, Registration previousReg) {
                log("[server] UPDATED ep=%s id=%s", updatedReg.getEndpoint(), updatedReg.getId());
                registration.set(updatedReg);
                updated.countDown();
            }

            @Override
            public void unregistered(Registration reg, Collection<Observation> observations, boolean expired,
                    Registration newReg) {
                log("[server] UNREGISTERED ep=%s id=%s expired=%s", reg.getEndpoint(), reg.getId(), expired);
                unregistered.countDown();
            }
        });
        s.getObservationService().addListener(new ObservationListener() {
            @Override
            public void newObservation(Observation observation, Registration reg) {
                log("[server] new observation %s", observation);
            }

            @Override
            public void cancelled(Observation observation) {
                log("[server] observation cancelled %s", observation);
            }

            @Override
            public void onResponse(SingleObservation observation, Registration reg, ObserveResponse response) {
                log("[server] NOTIFY %s => %s %s", observation.getPath(), response.getCode(), response.getContent());
                notifications.countDown();
            }

            @Override
            public void onResponse(CompositeObservation observation, Registration reg,
                    ObserveCompositeResponse response) {
                log("[server] NOTIFY-COMPOSITE %s => %s %s", observation.getPaths(), response.getCode(),
                        response.getContent());
                notifications.countDown();
            }

            @Override
            public void onError(Observation observation, Registration reg, Exception error) {
                log("[server] observation error %s: %s", observation, error);
            }
        });
        s.getSendService().addListener(new SendListener() {
            @Override
            public void dataReceived(Registration reg, TimestampedLwM2mNodes data, SendRequest request) {
                log("[server] SEND received from %s format=%s: %s", reg.getEndpoint(), request.getFormat(),
                        data.getNodes());
                sendReceived.countDown();
            }

            @Override
            public void onError(Registration reg, String errorMessage, Exception error) {
                log("[server] SEND error %s %s", errorMessage, error);
            }
        });
        return s;
    }

    static LeshanClient buildClient(String endpoint, List<LwM2mObjectEnabler> objects, Consumer<Configuration> tweak,
            ClientProtocolProvider... providers) {
        CaliforniumClientEndpointsProvider.Builder eb = new CaliforniumClientEndpointsProvider.Builder(providers);
        Configuration c = eb.createDefaultConfiguration();
        c.set(CoapConfig.MAX_MESSAGE_SIZE, 1024);
        c.set(CoapConfig.PREFERRED_BLOCK_SIZE, 512);
        if (tweak != null)
            tweak.accept(c);
        eb.setConfiguration(c);
        try {
            eb.setClientAddress(InetAddress.getByName(LOOPBACK));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
        LeshanClientBuilder b = new LeshanClientBuilder(endpoint);
        b.setObjects(objects);
        b.setEndpointsProviders(eb.build());
        DefaultRegistrationEngineFactory ef = new DefaultRegistrationEngineFactory();
        ef.setReconnectOnUpdate(false);
        ef.setResumeOnConnect(true);
        ef.setRequestTimeoutInMs(10000);
        b.setRegistrationEngineFactory(ef);
        return b.build();
    }

    static boolean await(CountDownLatch latch, String what, long seconds) throws InterruptedException {
        boolean ok = latch.await(seconds, TimeUnit.SECONDS);
        if (!ok) {
            failures++;
            log("[scenario] TIMEOUT waiting for %s", what);
        }
        return ok;
    }

    static void shutdown() {
        try {
            if (client != null)
                client.destroy(false);
        } catch (Exception e) {
            e.printStackTrace();
        }
        try {
            if (server != null)
                server.destroy();
        } catch (Exception e) {
            e.printStackTrace();
        }
    }

    static void deregisterAndStop() throws InterruptedException {
        log("[scenario] --- deregister ---");
        client.stop(true);
        await(unregistered, "deregistration", 10);
        sleep(300);
    }

    // ------------------------------------------------------------------ NoSec operations

    static int runNoSecOperations() throws Exception {
        server = buildServer(new InMemorySecurityStore(), null);
        server.start();

        ScenarioObjects.ScenarioDevice device = new ScenarioObjects.ScenarioDevice();
        ObjectsInitializer init = new ObjectsInitializer(new StaticModel(models()));
        init.setInstancesForObject(LwM2mId.SECURITY,
                Security.noSec("coap://" + LOOPBACK + ":" + SERVER_COAP_PORT, SHORT_SERVER_ID));
        init.setInstancesForObject(LwM2mId.SERVER, new Server(SHORT_SERVER_ID, LIFETIME));
        init.setInstancesForObject(LwM2mId.DEVICE, device);
        init.setInstancesForObject(LwM2mId.FIRMWARE, new ScenarioObjects.ScenarioFirmware());
        init.setFactoryForObject(ScenarioObjects.TEST_OBJECT_ID,
                (model, id, used) -> {
                    ScenarioObjects.TestInstance inst = new ScenarioObjects.TestInstance(id == null ? 1 : id);
                    inst.setModel(model);
                    return inst;
                });
        init.setInstancesForObject(ScenarioObjects.TEST_OBJECT_ID, new ScenarioObjects.TestInstance(0));
        List<LwM2mObjectEnabler> objects = init.create(LwM2mId.SECURITY, LwM2mId.SERVER, LwM2mId.DEVICE,
                LwM2mId.FIRMWARE, ScenarioObjects.TEST_OBJECT_ID);

        client = buildClient("leshan-client-01", objects, null, new FixedPortProviders.Coap(CLIENT_COAP_PORT));
        try {
            log("[scenario] --- register ---");
            client.start();
            if (!await(registered, "registration", 15))
                return 1;
            sleep(300);

            log("[scenario] --- reads of /3/0 in every content format ---");
            op("read /3/0 TLV", new ReadRequest(ContentFormat.TLV, 3, 0));
            op("read /3/0 SenML-JSON", new ReadRequest(ContentFormat.SENML_JSON, 3, 0));
            op("read /3/0 SenML-CBOR", new ReadRequest(ContentFormat.SENML_CBOR, 3, 0));
            op("read /3/0 LwM2M-JSON", new ReadRequest(ContentFormat.JSON, 3, 0));
            op("read /3/0 (no Accept)", new ReadRequest(3, 0));
            op("read /3/0/0 text", new ReadRequest(ContentFormat.TEXT, 3, 0, 0));
            op("read /3/0/9 CBOR", new ReadRequest(ContentFormat.CBOR, 3, 0, 9));
            op("read /3/0/11 TLV (multi-inst)", new ReadRequest(ContentFormat.TLV, 3, 0, 11));
            op("read /33000/0/2 opaque", new ReadRequest(ContentFormat.OPAQUE, ScenarioObjects.TEST_OBJECT_ID, 0, 2));

            log("[scenario] --- read-composite ---");
            op("read-composite SenML-JSON", new ReadCompositeRequest(ContentFormat.SENML_JSON,
                    ContentFormat.SENML_JSON, "/3/0/0", "/3/0/9", "/1/0/1"));
            op("read-composite SenML-CBOR", new ReadCompositeRequest(ContentFormat.SENML_CBOR,
                    ContentFormat.SENML_CBOR, "/3/0/0", "/3/0/9", "/1/0/1"));

            log("[scenario] --- writes ---");
            op("write /3/0/14 text (replace)", new WriteRequest(ContentFormat.TEXT, 3, 0, 14, "+01:00"));
            op("write /33000/0 TLV (replace)",
                    new WriteRequest(Mode.REPLACE, ContentFormat.TLV, ScenarioObjects.TEST_OBJECT_ID, 0,
                            LwM2mSingleResource.newStringResource(0, "replaced"),
                            LwM2mSingleResource.newIntegerResource(1, 7),
                            LwM2mSingleResource.newBinaryResource(2, new byte[] { 1, 2, 3, 4 }),
                            LwM2mSingleResource.newFloatResource(3, 1.25),
                            LwM2mSingleResource.newBooleanResource(4, false)));
            op("write /33000/0 SenML-JSON (update)",
                    new WriteRequest(Mode.UPDATE, ContentFormat.SENML_JSON, ScenarioObjects.TEST_OBJECT_ID, 0,
                            LwM2mSingleResource.newStringResource(0, "partial"),
                            LwM2mSingleResource.newIntegerResource(1, 8)));
            Map<String, Object> composite = new LinkedHashMap<>();
            composite.put("/3/0/14", "+02:00");
            composite.put("/33000/0/0", "composite");
            op("write-composite SenML-CBOR", new WriteCompositeRequest(ContentFormat.SENML_CBOR, composite));

            log("[scenario] --- write-attributes / discover ---");
            op("write-attributes /33000/0/1", new WriteAttributesRequest("/33000/0/1",
                    new LwM2mAttributeSet(LwM2mAttributes.create(LwM2mAttributes.MINIMUM_PERIOD, 10L),
                            LwM2mAttributes.create(LwM2mAttributes.MAXIMUM_PERIOD, 60L))));
            op("discover /3", new DiscoverRequest("/3"));
            op("discover /33000/0", new DiscoverRequest("/33000/0"));

            log("[scenario] --- execute ---");
            op("execute /3/0/4 (harmless reboot)", new ExecuteRequest("/3/0/4"));
            op("execute /33000/0/5 with args", new ExecuteRequest("/33000/0/5", "0='ping',1"));

            log("[scenario] --- create / delete ---");
            op("create /33000 (inst 1) TLV", new CreateRequest(ContentFormat.TLV, ScenarioObjects.TEST_OBJECT_ID,
                    new LwM2mObjectInstance(1, LwM2mSingleResource.newStringResource(0, "created"),
                            LwM2mSingleResource.newIntegerResource(1, 1))));
            op("read /33000/1 SenML-JSON",
                    new ReadRequest(ContentFormat.SENML_JSON, ScenarioObjects.TEST_OBJECT_ID, 1));
            op("delete /33000/1", new DeleteRequest(ScenarioObjects.TEST_OBJECT_ID, 1));
            sleep(500); // let any triggered registration update settle

            log("[scenario] --- observe /3/0/9 + 3 notifications + active cancel ---");
            notifications = new CountDownLatch(3);
            ObserveResponse obs = op("observe /3/0/9 SenML-JSON", new ObserveRequest(ContentFormat.SENML_JSON, "/3/0/9"));
            for (long v : new long[] { 86, 85, 84 }) {
                sleep(400);
                log("[client] battery level -> %d", v);
                device.setBattery(v);
            }
            await(notifications, "3 notifications", 10);
            sleep(300);
            if (obs != null && obs.getObservation() != null)
                op("cancel-observation /3/0/9", new CancelObservationRequest(obs.getObservation()));

            log("[scenario] --- observe-composite + 2 notifications + active cancel ---");
            notifications = new CountDownLatch(2);
            ObserveCompositeResponse cobs = op("observe-composite SenML-CBOR", new ObserveCompositeRequest(
                    ContentFormat.SENML_CBOR, ContentFormat.SENML_CBOR, "/3/0/9", "/3/0/14"));
            for (long v : new long[] { 83, 82 }) {
                sleep(400);
                log("[client] battery level -> %d", v);
                device.setBattery(v);
            }
            await(notifications, "2 composite notifications", 10);
            sleep(300);
            if (cobs != null && cobs.getObservation() != null)
                op("cancel-observe-composite", new CancelCompositeObservationRequest(cobs.getObservation()));

            log("[scenario] --- client Send (SenML-CBOR) ---");
            sleep(300);
            LwM2mServer lwServer = client.getRegisteredServers().values().iterator().next();
            SendResponse sr = client.getSendService().sendData(lwServer, ContentFormat.SENML_CBOR,
                    Arrays.asList("/3/0/9", "/3/0/13"), 5000);
            log("[client] send => %s", sr);
            await(sendReceived, "send", 5);

            log("[scenario] --- firmware update object ---");
            op("write /5/0/1 Package URI text",
                    new WriteRequest(ContentFormat.TEXT, 5, 0, 1, "coap://127.0.0.1:5683/fw/leshan-fw-1.0.1.bin"));
            byte[] pkg = new byte[4096];
            for (int i = 0; i < pkg.length; i++)
                pkg[i] = (byte) (i & 0xff);
            op("write /5/0/0 Package opaque 4096B", new WriteRequest(ContentFormat.OPAQUE, 5, 0, 0, pkg));
            op("read /5/0/3 State text", new ReadRequest(ContentFormat.TEXT, 5, 0, 3));

            log("[scenario] --- failing requests ---");
            op("read /42/0 (non-existent)", new ReadRequest(ContentFormat.TLV, 42, 0));
            op("write /3/0/0 (read-only)", new WriteRequest(ContentFormat.TEXT, 3, 0, 0, "nope"));

            log("[scenario] --- registration update ---");
            sleep(300);
            updated = new CountDownLatch(1);
            client.triggerRegistrationUpdate();
            await(updated, "registration update", 10);
            sleep(300);

            deregisterAndStop();
        } finally {
            shutdown();
        }
        log("[scenario] failures=%d", failures);
        return failures == 0 ? 0 : 1;
    }

    // ------------------------------------------------------------------ DTLS PSK

    static int runPsk(boolean cid) throws Exception {
        String endpoint = cid ? "leshan-client-cid" : "leshan-client-psk";
        InMemorySecurityStore store = new InMemorySecurityStore();
        store.add(SecurityInfo.newPreSharedKeyInfo(endpoint, PSK_IDENTITY, hex(PSK_KEY_HEX)));
        Consumer<Configuration> dtls = c -> {
            c.set(DtlsConfig.DTLS_CIPHER_SUITES, Arrays.asList(CipherSuite.TLS_PSK_WITH_AES_128_CCM_8));
            if (cid)
                c.set(DtlsConfig.DTLS_CONNECTION_ID_LENGTH, 4);
        };
        server = buildServer(store, dtls);
        server.start();

        ScenarioObjects.ScenarioDevice device = new ScenarioObjects.ScenarioDevice();
        ObjectsInitializer init = new ObjectsInitializer(new StaticModel(models()));
        init.setInstancesForObject(LwM2mId.SECURITY, Security.psk("coaps://" + LOOPBACK + ":" + SERVER_COAPS_PORT,
                SHORT_SERVER_ID, PSK_IDENTITY.getBytes(StandardCharsets.UTF_8), hex(PSK_KEY_HEX)));
        init.setInstancesForObject(LwM2mId.SERVER, new Server(SHORT_SERVER_ID, LIFETIME));
        init.setInstancesForObject(LwM2mId.DEVICE, device);
        List<LwM2mObjectEnabler> objects = init.create(LwM2mId.SECURITY, LwM2mId.SERVER, LwM2mId.DEVICE);
        client = buildClient(endpoint, objects, dtls, new FixedPortProviders.Coaps(CLIENT_COAPS_PORT));
        try {
            log("[scenario] --- register over DTLS PSK (cid=%s) ---", cid);
            client.start();
            if (!await(registered, "registration", 20))
                return 1;
            sleep(300);
            secureOperations(device);
            deregisterAndStop();
        } finally {
            shutdown();
        }
        log("[scenario] failures=%d", failures);
        return failures == 0 ? 0 : 1;
    }

    static int runOscore() throws Exception {
        String endpoint = "leshan-client-oscore";
        InMemorySecurityStore store = new InMemorySecurityStore();
        // server side: sender = server id, recipient = client id
        store.add(SecurityInfo.newOscoreInfo(endpoint,
                new OscoreSetting(hex(OSCORE_SERVER_ID_HEX), hex(OSCORE_CLIENT_ID_HEX), hex(OSCORE_MASTER_SECRET_HEX),
                        OSCORE_AEAD, OSCORE_HKDF, hex(OSCORE_MASTER_SALT_HEX))));
        server = buildServer(store, null, true);
        server.start();

        ScenarioObjects.ScenarioDevice device = new ScenarioObjects.ScenarioDevice();
        ObjectsInitializer init = new ObjectsInitializer(new StaticModel(models()));
        init.setInstancesForObject(LwM2mId.SECURITY,
                Security.oscoreOnly("coap://" + LOOPBACK + ":" + SERVER_COAP_PORT, SHORT_SERVER_ID, 0));
        init.setInstancesForObject(LwM2mId.OSCORE,
                new Oscore(0, new OscoreSetting(hex(OSCORE_CLIENT_ID_HEX), hex(OSCORE_SERVER_ID_HEX),
                        hex(OSCORE_MASTER_SECRET_HEX), OSCORE_AEAD, OSCORE_HKDF, hex(OSCORE_MASTER_SALT_HEX))));
        init.setInstancesForObject(LwM2mId.SERVER, new Server(SHORT_SERVER_ID, LIFETIME));
        init.setInstancesForObject(LwM2mId.DEVICE, device);
        List<LwM2mObjectEnabler> objects = init.create(LwM2mId.SECURITY, LwM2mId.SERVER, LwM2mId.DEVICE,
                LwM2mId.OSCORE);
        client = buildClient(endpoint, objects, null, new FixedPortProviders.CoapOscore(CLIENT_COAP_PORT));
        try {
            log("[scenario] --- register over OSCORE ---");
            client.start();
            if (!await(registered, "registration", 20))
                return 1;
            sleep(300);
            secureOperations(device);
            deregisterAndStop();
        } finally {
            shutdown();
        }
        log("[scenario] failures=%d", failures);
        return failures == 0 ? 0 : 1;
    }

    static void secureOperations(ScenarioObjects.ScenarioDevice device) throws Exception {
        op("read /3/0 TLV", new ReadRequest(ContentFormat.TLV, 3, 0));
        op("read /3/0 SenML-CBOR", new ReadRequest(ContentFormat.SENML_CBOR, 3, 0));
        op("read /3/0/0 text", new ReadRequest(ContentFormat.TEXT, 3, 0, 0));
        op("write /3/0/14 text", new WriteRequest(ContentFormat.TEXT, 3, 0, 14, "+01:00"));
        op("execute /3/0/4 (harmless reboot)", new ExecuteRequest("/3/0/4"));
        notifications = new CountDownLatch(3);
        ObserveResponse obs = op("observe /3/0/9 SenML-JSON", new ObserveRequest(ContentFormat.SENML_JSON, "/3/0/9"));
        for (long v : new long[] { 86, 85, 84 }) {
            sleep(400);
            log("[client] battery level -> %d", v);
            device.setBattery(v);
        }
        await(notifications, "3 notifications", 10);
        sleep(300);
        if (obs != null && obs.getObservation() != null)
            op("cancel-observation /3/0/9", new CancelObservationRequest(obs.getObservation()));
        op("read /42/0 (non-existent)", new ReadRequest(ContentFormat.TLV, 42, 0));
        updated = new CountDownLatch(1);
        client.triggerRegistrationUpdate();
        await(updated, "registration update", 10);
        sleep(300);
    }

    // ------------------------------------------------------------------ Bootstrap

    static class ScenarioTaskProvider implements BootstrapTaskProvider {
        @Override
        public Tasks getTasks(BootstrapSession session, List<LwM2mResponse> previousResponses) {
            Tasks tasks = new Tasks();
            tasks.supportedObjects = new HashMap<>();
            tasks.supportedObjects.put(0, "1.1");
            tasks.supportedObjects.put(1, "1.1");
            tasks.supportedObjects.put(2, "1.0");
            if (previousResponses == null) {
                log("[bs-server] session for ep=%s: starting with bootstrap-discover", session.getEndpoint());
                tasks.requestsToSend = new ArrayList<>();
                tasks.requestsToSend.add(new BootstrapDiscoverRequest());
                tasks.last = false;
                return tasks;
            }
            for (LwM2mResponse r : previousResponses)
                log("[bs-server] previous response: %s", r);
            List<BootstrapDownlinkRequest<? extends LwM2mResponse>> reqs = new ArrayList<>();
            reqs.add(new BootstrapDeleteRequest());
            LwM2mObjectInstance sec = new LwM2mObjectInstance(1,
                    LwM2mSingleResource.newStringResource(0, "coaps://" + LOOPBACK + ":" + SERVER_COAPS_PORT),
                    LwM2mSingleResource.newBooleanResource(1, false),
                    LwM2mSingleResource.newIntegerResource(2, 0), // PSK
                    LwM2mSingleResource.newBinaryResource(3, PSK_IDENTITY.getBytes(StandardCharsets.UTF_8)),
                    LwM2mSingleResource.newBinaryResource(4, new byte[0]),
                    LwM2mSingleResource.newBinaryResource(5, hex(PSK_KEY_HEX)),
                    LwM2mSingleResource.newIntegerResource(10, SHORT_SERVER_ID));
            reqs.add(new BootstrapWriteRequest(new LwM2mPath(0, 1), sec, ContentFormat.TLV));
            LwM2mObjectInstance srv = new LwM2mObjectInstance(0,
                    LwM2mSingleResource.newIntegerResource(0, SHORT_SERVER_ID),
                    LwM2mSingleResource.newIntegerResource(1, LIFETIME),
                    LwM2mSingleResource.newBooleanResource(6, false),
                    LwM2mSingleResource.newStringResource(7, "U"));
            reqs.add(new BootstrapWriteRequest(new LwM2mPath(1, 0), srv, ContentFormat.TLV));
            reqs.add(new BootstrapReadRequest(ContentFormat.TLV, 1));
            tasks.requestsToSend = reqs;
            tasks.last = true;
            return tasks;
        }
    }

    static int runBootstrap() throws Exception {
        String endpoint = "leshan-client-bs";
        // LwM2M server that the client is provisioned for (DTLS PSK on 5684)
        InMemorySecurityStore store = new InMemorySecurityStore();
        store.add(SecurityInfo.newPreSharedKeyInfo(endpoint, PSK_IDENTITY, hex(PSK_KEY_HEX)));
        Consumer<Configuration> dtls = c -> c.set(DtlsConfig.DTLS_CIPHER_SUITES,
                Arrays.asList(CipherSuite.TLS_PSK_WITH_AES_128_CCM_8));
        server = buildServer(store, dtls);
        server.start();

        CaliforniumBootstrapServerEndpointsProvider.Builder beb = new CaliforniumBootstrapServerEndpointsProvider.Builder(
                new CoapBootstrapServerProtocolProvider());
        beb.addEndpoint(new InetSocketAddress(LOOPBACK, BS_SERVER_PORT), Protocol.COAP);
        LeshanBootstrapServerBuilder bb = new LeshanBootstrapServerBuilder();
        bb.setEndpointsProviders(beb.build());
        bb.setTaskProvider(new ScenarioTaskProvider());
        LeshanBootstrapServer bs = bb.build();
        CountDownLatch bsDone = new CountDownLatch(1);
        bs.addListener(new BootstrapSessionAdapter() {
            @Override
            public void sendRequest(BootstrapSession session, BootstrapDownlinkRequest<? extends LwM2mResponse> request) {
                log("[bs-server] -> %s", request);
            }

            @Override
            public void onResponseSuccess(BootstrapSession session,
                    BootstrapDownlinkRequest<? extends LwM2mResponse> request, LwM2mResponse response) {
                log("[bs-server] <- %s : %s", response.getCode(), response);
            }

            @Override
            public void onResponseError(BootstrapSession session,
                    BootstrapDownlinkRequest<? extends LwM2mResponse> request, LwM2mResponse response) {
                log("[bs-server] <- ERROR %s : %s", response.getCode(), response);
            }

            @Override
            public void end(BootstrapSession session) {
                log("[bs-server] bootstrap session finished OK for %s", session.getEndpoint());
                bsDone.countDown();
            }

            @Override
            public void failed(BootstrapSession session, BootstrapFailureCause cause) {
                log("[bs-server] bootstrap session FAILED: %s", cause);
                failures++;
                bsDone.countDown();
            }
        });
        bs.start();

        ScenarioObjects.ScenarioDevice device = new ScenarioObjects.ScenarioDevice();
        ObjectsInitializer init = new ObjectsInitializer(new StaticModel(models()));
        init.setInstancesForObject(LwM2mId.SECURITY,
                Security.noSecBootstrap("coap://" + LOOPBACK + ":" + BS_SERVER_PORT));
        init.setClassForObject(LwM2mId.SERVER, Server.class);
        init.setInstancesForObject(LwM2mId.DEVICE, device);
        List<LwM2mObjectEnabler> objects = init.create(LwM2mId.SECURITY, LwM2mId.SERVER, LwM2mId.DEVICE);
        client = buildClient(endpoint, objects, dtls, new FixedPortProviders.Coap(CLIENT_COAP_PORT),
                new FixedPortProviders.Coaps(CLIENT_COAPS_PORT));
        try {
            log("[scenario] --- client-initiated bootstrap ---");
            client.start();
            await(bsDone, "bootstrap session", 20);
            if (!await(registered, "registration after bootstrap", 20))
                return 1;
            sleep(500);
            op("read /3/0 TLV", new ReadRequest(ContentFormat.TLV, 3, 0));
            deregisterAndStop();
        } finally {
            shutdown();
            bs.destroy();
        }
        log("[scenario] failures=%d", failures);
        return failures == 0 ? 0 : 1;
    }
}
