package lwm2mmonitor.peers;

import java.net.InetSocketAddress;
import java.security.cert.Certificate;
import java.util.List;

import org.eclipse.californium.elements.Connector;
import org.eclipse.californium.elements.UDPConnector;
import org.eclipse.californium.elements.config.Configuration;
import org.eclipse.californium.scandium.config.DtlsConnectorConfig;
import org.eclipse.leshan.client.californium.endpoint.CaliforniumClientEndpointFactory;
import org.eclipse.leshan.client.californium.endpoint.coap.CoapClientEndpointFactory;
import org.eclipse.leshan.client.californium.endpoint.coap.CoapClientProtocolProvider;
import org.eclipse.leshan.client.californium.endpoint.coap.CoapOscoreClientEndpointFactory;
import org.eclipse.leshan.client.californium.endpoint.coap.CoapOscoreProtocolProvider;
import org.eclipse.leshan.client.californium.endpoint.coaps.CoapsClientEndpointFactory;
import org.eclipse.leshan.client.californium.endpoint.coaps.CoapsClientProtocolProvider;
import org.eclipse.leshan.client.servers.ServerInfo;

/** Client protocol providers that bind the client socket to a fixed local UDP port. */
public final class FixedPortProviders {
    private FixedPortProviders() {
    }

    public static class Coap extends CoapClientProtocolProvider {
        private final int port;

        public Coap(int port) {
            this.port = port;
        }

        @Override
        public CaliforniumClientEndpointFactory createDefaultEndpointFactory() {
            return new CoapClientEndpointFactory() {
                @Override
                protected Connector createConnector(InetSocketAddress addr, Configuration config) {
                    return new UDPConnector(new InetSocketAddress(addr.getAddress(), port), config);
                }
            };
        }
    }

    public static class CoapOscore extends CoapOscoreProtocolProvider {
        private final int port;

        public CoapOscore(int port) {
            this.port = port;
        }

        @Override
        public CaliforniumClientEndpointFactory createDefaultEndpointFactory() {
            return new CoapOscoreClientEndpointFactory() {
                @Override
                protected Connector createConnector(InetSocketAddress addr, Configuration config) {
                    return new UDPConnector(new InetSocketAddress(addr.getAddress(), port), config);
                }
            };
        }
    }

    public static class Coaps extends CoapsClientProtocolProvider {
        private final int port;

        public Coaps(int port) {
            this.port = port;
        }

        @Override
        public CaliforniumClientEndpointFactory createDefaultEndpointFactory() {
            return new CoapsClientEndpointFactory() {
                @Override
                protected DtlsConnectorConfig.Builder createEffectiveDtlsConnectorConfigBuilder(InetSocketAddress addr,
                        ServerInfo serverInfo, DtlsConnectorConfig.Builder rootDtlsConfigBuilder,
                        Configuration coapConfig, boolean clientInitiatedOnly, List<Certificate> trustStore) {
                    return super.createEffectiveDtlsConnectorConfigBuilder(
                            new InetSocketAddress(addr.getAddress(), port), serverInfo, rootDtlsConfigBuilder,
                            coapConfig, clientInitiatedOnly, trustStore);
                }
            };
        }
    }
}
