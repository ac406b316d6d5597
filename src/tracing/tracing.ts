// OpenTelemetry traces (issue 12.7): one server span per request, with the GenAI semantic
// conventions' attributes (model, tokens, time to first token) and HTTP's; a child span for the
// wait for a slot and one for each try at a backend, whose W3C `traceparent` goes to the backend;
// the client's own `traceparent` is the parent. Exported over OTLP/HTTP in batches. Off unless an
// endpoint is configured, and then the SDK is loaded: a gateway without tracing carries none of
// it, not even in memory. Never the prompt or the answer: routing facts and counts only.
import type { Attributes, Context, Span, Tracer } from '@opentelemetry/api';
import type { IncomingHttpHeaders } from 'node:http';

type Api = typeof import('@opentelemetry/api');

export interface TracingConfig {
  readonly otlpEndpoint: string;
  readonly serviceName: string;
}

/** One request's spans. */
export interface RequestTrace {
  /** A child span of the request's (the wait for a slot, a try at a backend). */
  child(name: string, client: boolean, attributes?: Attributes): Span;
  /** The `traceparent` (and `tracestate`) a backend gets, for a try's span. */
  headersFor(span: Span): Record<string, string>;
  /** The request is over: its attributes, its status, and the span ends. */
  end(attributes: Attributes, failed: string | undefined): void;
}

export class Tracing {
  private constructor(
    private readonly api: Api,
    private readonly tracer: Tracer,
    private readonly propagator: import('@opentelemetry/core').W3CTraceContextPropagator,
    private readonly provider: import('@opentelemetry/sdk-trace-base').BasicTracerProvider,
  ) {}

  /** The tracer for this config, or undefined when tracing is off (no endpoint). */
  static async start(cfg: TracingConfig, version: string): Promise<Tracing | undefined> {
    if (cfg.otlpEndpoint === '') return undefined;
    const [api, core, sdk, exporter, resources] = await Promise.all([
      import('@opentelemetry/api'),
      import('@opentelemetry/core'),
      import('@opentelemetry/sdk-trace-base'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
    ]);
    const provider = new sdk.BasicTracerProvider({
      resource: resources.resourceFromAttributes({ 'service.name': cfg.serviceName, 'service.version': version }),
      spanProcessors: [new sdk.BatchSpanProcessor(new exporter.OTLPTraceExporter({ url: cfg.otlpEndpoint }), { scheduledDelayMillis: 1000, maxQueueSize: 8192 })],
    });
    return new Tracing(api, provider.getTracer('ollama-gateway', version), new core.W3CTraceContextPropagator(), provider);
  }

  /** A request arrives: its server span, under the client's `traceparent` when it sent one. */
  begin(method: string, route: string, headers: IncomingHttpHeaders): RequestTrace {
    const { api, tracer, propagator } = this;
    const parent = propagator.extract(api.ROOT_CONTEXT, headers, api.defaultTextMapGetter);
    const span = tracer.startSpan(`${method} ${route}`, { kind: api.SpanKind.SERVER, attributes: { 'http.request.method': method, 'http.route': route } }, parent);
    const under: Context = api.trace.setSpan(parent, span);
    return {
      child: (name, client, attributes) => tracer.startSpan(name, { kind: client ? api.SpanKind.CLIENT : api.SpanKind.INTERNAL, ...(attributes ? { attributes } : {}) }, under),
      headersFor: (child) => {
        const carrier: Record<string, string> = {};
        propagator.inject(api.trace.setSpan(under, child), carrier, api.defaultTextMapSetter);
        return carrier;
      },
      end: (attributes, failed) => {
        span.setAttributes(attributes);
        if (failed !== undefined) span.setStatus({ code: api.SpanStatusCode.ERROR, message: failed });
        span.end();
      },
    };
  }

  /** Send what is batched now (tests; a stop). */
  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }

  /** The span status of a finished try or wait. */
  failed(span: Span, message: string): void {
    span.setStatus({ code: this.api.SpanStatusCode.ERROR, message });
  }
}
