// WebSocket close codes by name (RFC 6455 §7.4.1 and the IANA registry), so that no bare number
// stands in the code. graphql-ws adds its own 44xx codes in src/graphql/protocol.ts.

export const WsClose = {
  Normal: 1000,
  GoingAway: 1001,
  /** A client broke the WebSocket protocol (ws sends the precise code itself: 1002, 1007, 1009). */
  ProtocolError: 1002,
  /** A client frame over maxPayload (ws closes with it by itself). */
  MessageTooBig: 1009,
  InternalError: 1011,
  /** The consumer stayed behind for WS_SLOW_CLOSE_SECONDS (SPEC §5). */
  TryAgainLater: 1013,
} as const;
