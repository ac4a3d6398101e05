// The home control UI (portlama-agent ui): a second entry of the same
// stack as the panel, built into internal/homeui/dist.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { ApiError } from "../api/client";
import { ToastProvider } from "../components/toast";
import { HomeApp } from "./HomeApp";
import "../index.css";

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      retry: (count, err) => !(err instanceof ApiError && err.status >= 400 && err.status < 500) && count < 2,
      staleTime: 1_000,
    },
  },
});

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <ToastProvider>
        <HomeApp />
      </ToastProvider>
    </QueryClientProvider>
  </StrictMode>,
);
