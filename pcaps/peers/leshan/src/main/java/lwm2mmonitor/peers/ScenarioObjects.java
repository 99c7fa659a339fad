package lwm2mmonitor.peers;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Date;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import org.eclipse.leshan.client.resource.BaseInstanceEnabler;
import org.eclipse.leshan.client.servers.LwM2mServer;
import org.eclipse.leshan.core.model.ObjectModel;
import org.eclipse.leshan.core.model.ResourceModel;
import org.eclipse.leshan.core.model.ResourceModel.Operations;
import org.eclipse.leshan.core.model.ResourceModel.Type;
import org.eclipse.leshan.core.node.LwM2mResource;
import org.eclipse.leshan.core.node.LwM2mSingleResource;
import org.eclipse.leshan.core.request.argument.Arguments;
import org.eclipse.leshan.core.response.ExecuteResponse;
import org.eclipse.leshan.core.response.ReadResponse;
import org.eclipse.leshan.core.response.WriteResponse;

/** Deterministic client-side object implementations used by the capture scenarios. */
public final class ScenarioObjects {

    private ScenarioObjects() {
    }

    public static final int TEST_OBJECT_ID = 33000;

    /** A small vendor-specific multi-instance object used for create/delete/write/opaque tests. */
    public static ObjectModel testObjectModel() {
        List<ResourceModel> res = new ArrayList<>();
        res.add(new ResourceModel(0, "Name", Operations.RW, false, true, Type.STRING, "", "", "name"));
        res.add(new ResourceModel(1, "Counter", Operations.RW, false, true, Type.INTEGER, "", "", "counter"));
        res.add(new ResourceModel(2, "Blob", Operations.RW, false, false, Type.OPAQUE, "", "", "opaque blob"));
        res.add(new ResourceModel(3, "Ratio", Operations.RW, false, false, Type.FLOAT, "", "", "float"));
        res.add(new ResourceModel(4, "Enabled", Operations.RW, false, false, Type.BOOLEAN, "", "", "boolean"));
        res.add(new ResourceModel(5, "Trigger", Operations.E, false, false, Type.NONE, "", "", "harmless exec"));
        return new ObjectModel(TEST_OBJECT_ID, "Scenario Test Object", "test object for lwm2m-monitor captures",
                "1.0", true, false, res);
    }

    /** Device object /3 with a harmless reboot. */
    public static class ScenarioDevice extends BaseInstanceEnabler {
        private static final List<Integer> SUPPORTED = Arrays.asList(0, 1, 2, 3, 4, 9, 11, 13, 14, 15, 16, 17, 18,
                19);
        private volatile long battery = 87;
        private String utcOffset = "+00:00";
        private String timezone = "Europe/Paris";

        public ScenarioDevice() {
            super(0);
        }

        public void setBattery(long value) {
            battery = value;
            fireResourceChange(9);
        }

        @Override
        public ReadResponse read(LwM2mServer server, int resourceId) {
            switch (resourceId) {
            case 0:
                return ReadResponse.success(resourceId, "Eclipse Leshan");
            case 1:
                return ReadResponse.success(resourceId, "lwm2m-monitor-scenario");
            case 2:
                return ReadResponse.success(resourceId, "LM-0001");
            case 3:
                return ReadResponse.success(resourceId, "1.0.0");
            case 9:
                return ReadResponse.success(resourceId, battery);
            case 11:
                Map<Integer, Long> errors = new HashMap<>();
                errors.put(0, 0L);
                return ReadResponse.success(resourceId, errors, Type.INTEGER);
            case 13:
                return ReadResponse.success(resourceId, new Date(1700000000000L));
            case 14:
                return ReadResponse.success(resourceId, utcOffset);
            case 15:
                return ReadResponse.success(resourceId, timezone);
            case 16:
                return ReadResponse.success(resourceId, "U");
            case 17:
                return ReadResponse.success(resourceId, "capture-device");
            case 18:
                return ReadResponse.success(resourceId, "HW-1");
            case 19:
                return ReadResponse.success(resourceId, "SW-1");
            default:
                return super.read(server, resourceId);
            }
        }

        @Override
        public WriteResponse write(LwM2mServer server, boolean replace, int resourceId, LwM2mResource value) {
            switch (resourceId) {
            case 14:
                utcOffset = (String) value.getValue();
                fireResourceChange(14);
                return WriteResponse.success();
            case 15:
                timezone = (String) value.getValue();
                fireResourceChange(15);
                return WriteResponse.success();
            default:
                return super.write(server, replace, resourceId, value);
            }
        }

        @Override
        public ExecuteResponse execute(LwM2mServer server, int resourceId, Arguments arguments) {
            if (resourceId == 4) {
                System.out.println("[client] /3/0/4 Reboot executed (harmless, nothing done) args=" + arguments);
                return ExecuteResponse.success();
            }
            return super.execute(server, resourceId, arguments);
        }

        @Override
        public List<Integer> getAvailableResourceIds(ObjectModel model) {
            return SUPPORTED;
        }
    }

    /** Firmware update object /5: accepts package (opaque, block-wise) and package URI. */
    public static class ScenarioFirmware extends BaseInstanceEnabler {
        private static final List<Integer> SUPPORTED = Arrays.asList(0, 1, 2, 3, 5, 9);
        private String uri = "";
        private long state = 0;
        private long result = 0;

        public ScenarioFirmware() {
            super(0);
        }

        @Override
        public ReadResponse read(LwM2mServer server, int resourceId) {
            switch (resourceId) {
            case 1:
                return ReadResponse.success(resourceId, uri);
            case 3:
                return ReadResponse.success(resourceId, state);
            case 5:
                return ReadResponse.success(resourceId, result);
            case 9:
                return ReadResponse.success(resourceId, 2L);
            default:
                return super.read(server, resourceId);
            }
        }

        @Override
        public WriteResponse write(LwM2mServer server, boolean replace, int resourceId, LwM2mResource value) {
            switch (resourceId) {
            case 0:
                byte[] pkg = (byte[]) value.getValue();
                System.out.println("[client] /5/0/0 firmware package received: " + pkg.length + " bytes");
                state = 2; // downloaded
                fireResourceChange(3);
                return WriteResponse.success();
            case 1:
                uri = (String) value.getValue();
                System.out.println("[client] /5/0/1 package URI set to " + uri);
                fireResourceChange(1);
                return WriteResponse.success();
            default:
                return super.write(server, replace, resourceId, value);
            }
        }

        @Override
        public ExecuteResponse execute(LwM2mServer server, int resourceId, Arguments arguments) {
            if (resourceId == 2) {
                System.out.println("[client] /5/0/2 Update executed (harmless)");
                return ExecuteResponse.success();
            }
            return super.execute(server, resourceId, arguments);
        }

        @Override
        public List<Integer> getAvailableResourceIds(ObjectModel model) {
            return SUPPORTED;
        }
    }

    /** Generic instance of the test object: keeps resources in a map. */
    public static class TestInstance extends BaseInstanceEnabler {
        private final Map<Integer, LwM2mResource> values = new TreeMap<>();

        public TestInstance() {
            values.put(0, LwM2mSingleResource.newStringResource(0, "initial"));
            values.put(1, LwM2mSingleResource.newIntegerResource(1, 42));
            values.put(2, LwM2mSingleResource.newBinaryResource(2,
                    new byte[] { (byte) 0xde, (byte) 0xad, (byte) 0xbe, (byte) 0xef, 0x00, 0x01, 0x02, 0x03 }));
            values.put(3, LwM2mSingleResource.newFloatResource(3, 3.5));
            values.put(4, LwM2mSingleResource.newBooleanResource(4, true));
        }

        public TestInstance(int id) {
            this();
            setId(id);
        }

        @Override
        public ReadResponse read(LwM2mServer server, int resourceId) {
            LwM2mResource r = values.get(resourceId);
            if (r == null)
                return ReadResponse.notFound();
            return ReadResponse.success(r);
        }

        @Override
        public WriteResponse write(LwM2mServer server, boolean replace, int resourceId, LwM2mResource value) {
            if (resourceId < 0 || resourceId > 4)
                return WriteResponse.notFound();
            values.put(resourceId, value);
            if (getModel() != null) // not yet attached while being created
                fireResourceChange(resourceId);
            return WriteResponse.success();
        }

        @Override
        public ExecuteResponse execute(LwM2mServer server, int resourceId, Arguments arguments) {
            if (resourceId == 5) {
                System.out.println("[client] /" + TEST_OBJECT_ID + "/" + getId() + "/5 executed args=" + arguments);
                return ExecuteResponse.success();
            }
            return ExecuteResponse.notFound();
        }

        @Override
        public List<Integer> getAvailableResourceIds(ObjectModel model) {
            return Arrays.asList(0, 1, 2, 3, 4, 5);
        }
    }
}
